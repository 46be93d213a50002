package gateway

// sendDisconnect publishes the Disconnect of c's player (internal/ingest's
// Disconnects) if c was in a zone, did not Leave, and its session did not
// move to another connection.
func (s *Service) sendDisconnect(c *conn, zone, reason string) {
	if zone == "" || c.session == "" || !c.authed.Load() {
		return
	}
	handedOff := c.ses.HandedOff()
	if handedOff {
		return // resumed elsewhere: the session lives on
	}
	s.disc.Send(s.nc, c.session, c.player, c.name, zone, reason)
}
