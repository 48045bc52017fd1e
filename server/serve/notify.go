package serve

import (
	"fmt"
	"net"
	"time"
)

// notifier speaks systemd's sd_notify protocol: one datagram per state
// change to the unix socket in NOTIFY_SOCKET ("@name" is the abstract
// namespace). With no socket it does nothing.
type notifier struct {
	socket string
}

func (n notifier) notify(state string) error {
	if n.socket == "" {
		return nil
	}
	name := n.socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}
