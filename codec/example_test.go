package codec_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/thingif/thingif/codec"
)

// A server serves a request that arrived over MQTT with its REST handler, and
// a device reads the answer.
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /thing-if/apps/{app}/targets/{target}/states", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("handler: %s %s target=%s type=%s\n", r.Method, r.URL.Path,
			r.PathValue("target"), r.Header.Get("Content-Type"))
		w.Header().Set("X-Kii-RequestID", r.Header.Get("X-Kii-RequestID"))
		w.WriteHeader(http.StatusNoContent)
	})

	// The device side.
	topic := codec.Topic{ClientID: "mq1", AppID: "app1", Rest: "targets/thing:th.1/states"}
	payload := codec.AppendRequest(nil, "PUT", http.Header{
		"Content-Type":    {"application/json"},
		"X-Kii-RequestID": {"r-1"},
	}, []byte(`{"power":true}`))
	fmt.Printf("publish %s %q\n", topic, payload)

	// The server side, on receiving the PUBLISH.
	t, err := codec.ParseTopic(topic.String())
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := codec.NewHTTPRequest(context.Background(), t, payload, codec.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := codec.NewResponseWriter()
	mux.ServeHTTP(w, r)
	fmt.Printf("answer %q\n", w.Bytes())

	// The device reads the answer.
	resp, err := codec.ParseResponse(w.Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("status", resp.StatusCode, "request ID", resp.Header.Get("X-Kii-RequestID"))
	// Output:
	// publish p/mq1/thing-if/apps/app1/targets/thing:th.1/states "PUT\r\nContent-Type: application/json\r\nX-Kii-RequestID: r-1\r\n\r\n{\"power\":true}"
	// handler: PUT /thing-if/apps/app1/targets/thing:th.1/states target=thing:th.1 type=application/json
	// answer "204\r\nX-Kii-RequestID: r-1\r\n\r\n"
	// status 204 request ID r-1
}

// The onboarding request of the MQTT sample: LF line ends and a
// "Content-type" header without a space are fine.
func ExampleParseRequest() {
	req, err := codec.ParseRequest([]byte("POST\n" +
		"Content-type:application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n" +
		"\n" +
		`{"vendorThingID":"4649",  "thingPassword":"1234"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Method, req.Header.Get("Content-Type"))
	fmt.Println(string(req.Body))
	// Output:
	// POST application/vnd.kii.OnboardingWithVendorThingIDByThing+json
	// {"vendorThingID":"4649",  "thingPassword":"1234"}
}
