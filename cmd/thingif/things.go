package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
)

// thingInfo is a thing as the REST API answers it.
type thingInfo struct {
	ThingID         string          `json:"thingID"`
	VendorThingID   string          `json:"vendorThingID"`
	ThingType       string          `json:"thingType"`
	FirmwareVersion string          `json:"firmwareVersion"`
	LayoutPosition  string          `json:"layoutPosition"`
	ThingProperties json.RawMessage `json:"thingProperties"`
	Owner           string          `json:"owner"`
	Created         int64           `json:"created"`
	Modified        int64           `json:"modified"`
}

// pageFlags are --limit and --page of the list commands.
func pageFlags(fs *flagSet) (limit *int, page *string) {
	limit = fs.Int("limit", 50, "at most `n` per page (the server caps it at 100)")
	page = fs.String("page", "", "pagination `key` printed by the previous page")
	return limit, page
}

func pageQuery(limit int, page string) string {
	q := url.Values{"bestEffortLimit": {fmt.Sprint(limit)}}
	if page != "" {
		q.Set("paginationKey", page)
	}
	return q.Encode()
}

// printMore points to the next page, on stderr so that the table on
// stdout stays a table.
func printMore(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "more: --page %s\n", next)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func thingList(fs *flagSet) action {
	c := newAppClient(fs)
	limit, page := pageFlags(fs)
	search := fs.String("search", "", "only things whose thing ID or vendor thing ID contains this `text` (ASCII case ignored)")
	return func(ctx context.Context, s stdio, _ []string) error {
		c.stdout = s.out
		q := pageQuery(*limit, *page)
		if *search != "" {
			q += "&search=" + url.QueryEscape(*search)
		}
		var out struct {
			Things            []thingInfo `json:"things"`
			NextPaginationKey string      `json:"nextPaginationKey"`
		}
		raw, err := c.call(ctx, "GET", "/thing-if/apps/"+c.app+"/things?"+q, "", nil, &out)
		if err != nil {
			return err
		}
		if c.printJSON(raw) {
			return nil
		}
		tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "THING ID\tVENDOR THING ID\tTYPE\tFIRMWARE\tCREATED")
		for _, t := range out.Things {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ThingID, t.VendorThingID, orDash(t.ThingType), orDash(t.FirmwareVersion), ms(t.Created))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		printMore(s.err, out.NextPaginationKey)
		return nil
	}
}

func thingGet(fs *flagSet) action {
	c := newAppClient(fs)
	return func(ctx context.Context, s stdio, args []string) error {
		c.stdout = s.out
		var t thingInfo
		raw, err := c.call(ctx, "GET", "/thing-if/apps/"+c.app+"/things/"+url.PathEscape(args[0]), "", nil, &t)
		if err != nil {
			return err
		}
		if c.printJSON(raw) {
			return nil
		}
		props := "{}"
		if len(t.ThingProperties) > 0 {
			props = string(t.ThingProperties)
		}
		fmt.Fprintf(s.out, "thing      %s\nvendor ID  %s\ntype       %s\nfirmware   %s\nlayout     %s\nowner      %s\nproperties %s\ncreated    %s\nmodified   %s\n",
			t.ThingID, t.VendorThingID, orDash(t.ThingType), orDash(t.FirmwareVersion), t.LayoutPosition, orDash(t.Owner), props, ms(t.Created), ms(t.Modified))
		return nil
	}
}
