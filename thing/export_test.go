package thing

// Test seams: they reach into a running client the way the network would.

// InjectPush hands payload to the client as if the API broker had pushed
// it on the thing's topic.
func InjectPush(c *Client, payload []byte) { c.enqueue(payload) }

// DropAnswers makes the client ignore (or, with false, deliver again) the
// answers to its API calls, as if they were lost.
func DropAnswers(c *Client, drop bool) { c.dropAnswers.Store(drop) }

// CutConnection closes the client's network connection to the API broker
// under it, if it is up.
func CutConnection(c *Client) {
	c.mu.Lock()
	cm := c.cm
	c.mu.Unlock()
	if cm != nil {
		cm.TerminateConnectionForTest()
	}
}

// ActionResults is actionResults.
var ActionResults = actionResults
