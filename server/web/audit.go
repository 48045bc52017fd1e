package web

import (
	"context"
	"log/slog"
	"strings"

	"github.com/dais-dev/dais/server/store"
)

// Audit log actions recorded outside the API routes (the API's own are
// in server/api/audit.go). The names are Connect's.
const (
	AuditLogin      = "user_login"
	AuditLogout     = "user_logout"
	AuditAddAPIKey  = "add_api_key"
	AuditDropAPIKey = "remove_api_key"
	AuditClaimToken = "add_token"
)

// RecordAudit adds an entry to the audit log: u (nil: the server itself)
// did action. A failure is logged, not returned: the action is done.
func RecordAudit(ctx context.Context, st store.UsageStore, log *slog.Logger, u *store.User, action, description string) {
	l := &store.AuditLog{Action: action, EventDescription: description}
	if u != nil {
		l.UserID, l.UserGUID, l.UserDescription = u.ID, u.GUID, DescribeUser(u)
	}
	if err := st.AddAuditLog(context.WithoutCancel(ctx), l); err != nil && log != nil {
		log.Error("record in the audit log", "action", action, logKeyErr, err)
	}
}

// DescribeUser is Connect's user_description: "Alice Smith (alice)", or
// the username alone.
func DescribeUser(u *store.User) string {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if name == "" {
		return u.Username
	}
	return name + " (" + u.Username + ")"
}
