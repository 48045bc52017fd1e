// Package storetest is the conformance suite every store.Store
// implementation passes: run it from the implementation's tests with a
// function that opens a fresh, empty, migrated store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Opener returns a fresh, empty store; it registers its own cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite, each part on a fresh store from open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"ListUsers", testListUsers},
		{"APIKeys", testAPIKeys},
		{"Sessions", testSessions},
		{"Tokens", testTokens},
		{"Repositories", testRepositories},
		{"Content", testContent},
		{"ListContent", testListContent},
		{"VisibleTotals", testVisibleTotals},
		{"WordSearch", testWordSearch},
		{"Environment", testEnvironment},
		{"Permissions", testPermissions},
		{"Groups", testGroups},
		{"UserIdentity", testUserIdentity},
		{"GroupPermissions", testGroupPermissions},
		{"Tags", testTags},
		{"Vanities", testVanities},
		{"Bundles", testBundles},
		{"Tasks", testTasks},
		{"TaskOutputConcurrent", testTaskOutputConcurrent},
		{"Renders", testRenders},
		{"Schedules", testSchedules},
		{"ConnectSchedules", testConnectSchedules},
		{"ClaimScheduleRace", func(t *testing.T, s store.Store) { testClaimRace(t, []store.Store{s, s}) }},
		{"Jobs", testJobs},
		{"Nodes", testNodes},
		{"DeleteCascades", testDeleteCascades},
		{"Settings", testSettings},
		{"AuditLogs", testAuditLogs},
		{"Usage", testUsage},
		{"Misc", testMisc},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each part has its own store
			tc.fn(t, open(t))
		})
	}
}

// RunClaimRace checks that servers on separate Store instances of one
// database racing for one due schedule produce exactly one winner.
func RunClaimRace(t *testing.T, stores []store.Store) {
	testClaimRace(t, stores)
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// T0 is a fixed time with sub-microsecond noise that stores drop.
var T0 = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

func us(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func intp(v int) *int       { return &v }
func i64p(v int64) *int64   { return &v }
func strp(v string) *string { return &v }

func mkUser(t *testing.T, s store.Store, name, role string) *store.User {
	t.Helper()
	u := &store.User{Username: name, FirstName: "F" + name, LastName: "L" + name, Email: name + "@example.org", Role: role, PasswordHash: "hash-" + name}
	must(t, s.CreateUser(ctx(t), u))
	return u
}

func mkContent(t *testing.T, s store.Store, owner int64, name string) *store.Content {
	t.Helper()
	c := &store.Content{Name: name, Title: "Title " + name, OwnerID: owner}
	must(t, s.CreateContent(ctx(t), c))
	return c
}

func testUsers(t *testing.T, s store.Store) {
	c := ctx(t)
	u := &store.User{Username: "alice", FirstName: "Alice", LastName: "A", Email: "a@example.org",
		Role: store.RoleAdministrator, PasswordHash: "$2a$hash", CreatedAt: T0}
	must(t, s.CreateUser(c, u))
	if u.ID == 0 || len(u.GUID) != 36 {
		t.Fatalf("CreateUser did not fill ID and GUID: %+v", u)
	}
	for _, get := range []struct {
		name string
		fn   func() (*store.User, error)
	}{
		{"User", func() (*store.User, error) { return s.User(c, u.ID) }},
		{"UserByGUID", func() (*store.User, error) { return s.UserByGUID(c, u.GUID) }},
		{"UserByUsername", func() (*store.User, error) { return s.UserByUsername(c, "alice") }},
	} {
		got, err := get.fn()
		must(t, err)
		want := *u
		want.CreatedAt, want.UpdatedAt = us(T0), us(T0)
		if *got != want {
			t.Fatalf("%s = %+v, want %+v", get.name, *got, want)
		}
	}
	_, err := s.User(c, u.ID+1000)
	wantErr(t, err, store.ErrNotFound, "User(missing)")
	_, err = s.UserByUsername(c, "nobody")
	wantErr(t, err, store.ErrNotFound, "UserByUsername(missing)")

	dup := &store.User{Username: "alice", Role: store.RoleViewer}
	wantErr(t, s.CreateUser(c, dup), store.ErrConflict, "CreateUser(duplicate username)")

	u.Role, u.Locked, u.FirstName, u.LastLoginAt = store.RolePublisher, true, "Alicia", T0.Add(time.Hour)
	must(t, s.UpdateUser(c, u))
	got, err := s.User(c, u.ID)
	must(t, err)
	eq(t, "role", got.Role, store.RolePublisher)
	eq(t, "locked", got.Locked, true)
	eq(t, "first name", got.FirstName, "Alicia")
	eq(t, "last login", got.LastLoginAt, us(T0.Add(time.Hour)))
	if !got.UpdatedAt.After(got.CreatedAt) {
		t.Fatalf("UpdatedAt %v not after CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
	bad := *u
	bad.Role = "superuser"
	if err := s.UpdateUser(c, &bad); err == nil {
		t.Fatal("UpdateUser accepted role superuser")
	}
	missing := *u
	missing.ID = u.ID + 1000
	wantErr(t, s.UpdateUser(c, &missing), store.ErrNotFound, "UpdateUser(missing)")

	must(t, s.DeleteUser(c, u.ID))
	_, err = s.User(c, u.ID)
	wantErr(t, err, store.ErrNotFound, "User after delete")
	wantErr(t, s.DeleteUser(c, u.ID), store.ErrNotFound, "DeleteUser twice")
}

func testListUsers(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, n := range []string{"carol", "bob", "anna", "ben", "dave_x", "davey"} {
		role := store.RoleViewer
		if n[0] == 'b' {
			role = store.RolePublisher
		}
		mkUser(t, s, n, role)
	}
	tests := []struct {
		name  string
		f     store.UserFilter
		want  []string
		total int
	}{
		{"all", store.UserFilter{}, []string{"anna", "ben", "bob", "carol", "dave_x", "davey"}, 6},
		{"prefix", store.UserFilter{Prefix: "B"}, []string{"ben", "bob"}, 2},
		{"prefix first name", store.UserFilter{Prefix: "fca"}, []string{"carol"}, 1},
		{"underscore is literal", store.UserFilter{Prefix: "dave_"}, []string{"dave_x"}, 1},
		{"role", store.UserFilter{Role: store.RoleViewer}, []string{"anna", "carol", "dave_x", "davey"}, 4},
		{"page", store.UserFilter{Start: 1, Count: 2}, []string{"ben", "bob"}, 6},
		{"offset only", store.UserFilter{Start: 4}, []string{"dave_x", "davey"}, 6},
		{"none", store.UserFilter{Prefix: "zz"}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			us, total, err := s.ListUsers(c, tc.f)
			must(t, err)
			var names []string
			for _, u := range us {
				names = append(names, u.Username)
			}
			if !slices.Equal(names, tc.want) || total != tc.total {
				t.Fatalf("ListUsers(%+v) = %v, %d; want %v, %d", tc.f, names, total, tc.want, tc.total)
			}
		})
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "keyholder", store.RolePublisher)
	k1 := &store.APIKey{UserID: u.ID, Name: "laptop", Hash: "h1", Prefix: "abcd"}
	k2 := &store.APIKey{UserID: u.ID, Name: "ci", Hash: "h2", Prefix: "efgh", CreatedAt: T0}
	must(t, s.CreateAPIKey(c, k1))
	must(t, s.CreateAPIKey(c, k2))
	wantErr(t, s.CreateAPIKey(c, &store.APIKey{UserID: u.ID, Hash: "h1"}), store.ErrConflict, "duplicate hash")
	wantErr(t, s.CreateAPIKey(c, &store.APIKey{UserID: u.ID + 99, Hash: "h3"}), store.ErrConflict, "key of missing user")

	got, err := s.APIKeyByHash(c, "h2")
	must(t, err)
	eq(t, "key id", got.ID, k2.ID)
	eq(t, "key user", got.UserID, u.ID)
	eq(t, "key name", got.Name, "ci")
	eq(t, "key prefix", got.Prefix, "efgh")
	eq(t, "key created", got.CreatedAt, us(T0))
	if !got.LastUsedAt.IsZero() {
		t.Fatalf("LastUsedAt = %v, want zero", got.LastUsedAt)
	}
	_, err = s.APIKeyByHash(c, "nope")
	wantErr(t, err, store.ErrNotFound, "APIKeyByHash(missing)")

	must(t, s.TouchAPIKey(c, k2.ID, T0.Add(time.Minute)))
	got, err = s.APIKeyByHash(c, "h2")
	must(t, err)
	eq(t, "last used", got.LastUsedAt, us(T0.Add(time.Minute)))

	keys, err := s.ListAPIKeys(c, u.ID)
	must(t, err)
	if len(keys) != 2 || keys[0].ID != k1.ID || keys[1].ID != k2.ID {
		t.Fatalf("ListAPIKeys = %+v, want k1, k2", keys)
	}
	must(t, s.DeleteAPIKey(c, k1.ID))
	_, err = s.APIKeyByHash(c, "h1")
	wantErr(t, err, store.ErrNotFound, "deleted key")
	wantErr(t, s.DeleteAPIKey(c, k1.ID), store.ErrNotFound, "DeleteAPIKey twice")
	wantErr(t, s.TouchAPIKey(c, k1.ID, T0), store.ErrNotFound, "TouchAPIKey(deleted)")
}

func testSessions(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "sessioned", store.RoleViewer)
	must(t, s.CreateSession(c, &store.Session{TokenHash: "live", UserID: u.ID, ExpiresAt: T0.Add(time.Hour), IDToken: "eyJ.id.token"}))
	must(t, s.CreateSession(c, &store.Session{TokenHash: "old", UserID: u.ID, ExpiresAt: T0.Add(-time.Hour)}))
	wantErr(t, s.CreateSession(c, &store.Session{TokenHash: "live", UserID: u.ID, ExpiresAt: T0}), store.ErrConflict, "duplicate session")

	got, err := s.Session(c, "live", T0)
	must(t, err)
	eq(t, "session user", got.UserID, u.ID)
	eq(t, "session expiry", got.ExpiresAt, us(T0.Add(time.Hour)))
	eq(t, "session ID token", got.IDToken, "eyJ.id.token")
	_, err = s.Session(c, "old", T0)
	wantErr(t, err, store.ErrNotFound, "expired session")
	_, err = s.Session(c, "live", T0.Add(2*time.Hour))
	wantErr(t, err, store.ErrNotFound, "session after expiry")

	n, err := s.DeleteExpiredSessions(c, T0)
	must(t, err)
	eq(t, "expired sessions deleted", n, int64(1))
	must(t, s.DeleteSession(c, "live"))
	_, err = s.Session(c, "live", T0)
	wantErr(t, err, store.ErrNotFound, "deleted session")
}

func testContent(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "owner", store.RolePublisher)
	other := mkUser(t, s, "other", store.RolePublisher)
	ct := &store.Content{Name: "app", Title: "My App", Description: "d", OwnerID: u.ID, CreatedAt: T0,
		RVersionWanted: "4.2", PyVersionWanted: "3.10.1", QuartoVersionWanted: "1.3.450"}
	must(t, s.CreateContent(c, ct))
	if ct.ID == 0 || len(ct.GUID) != 36 {
		t.Fatalf("CreateContent did not fill ID and GUID: %+v", ct)
	}
	eq(t, "default access type", ct.AccessType, store.AccessACL)
	second := mkContent(t, s, u.ID, "second")
	if second.ID <= ct.ID {
		t.Fatalf("ids not increasing: %d then %d", ct.ID, second.ID)
	}
	wantErr(t, s.CreateContent(c, &store.Content{Name: "app", OwnerID: u.ID}), store.ErrConflict, "same name, same owner")
	must(t, s.CreateContent(c, &store.Content{Name: "app", OwnerID: other.ID}))
	wantErr(t, s.CreateContent(c, &store.Content{Name: "x", OwnerID: u.ID + 999}), store.ErrConflict, "missing owner")

	got, err := s.Content(c, ct.ID)
	must(t, err)
	want := *ct
	want.CreatedAt, want.UpdatedAt = us(T0), us(T0)
	if !contentEqual(*got, want) {
		t.Fatalf("Content = %+v, want %+v", *got, want)
	}
	if got.MinProcesses != nil || got.BundleID != nil || got.OutboundNetwork != nil || got.MemoryLimit != nil || got.CPULimit != nil ||
		got.ConnectionTimeout != nil || got.ReadTimeout != nil {
		t.Fatalf("unset pointers read back non-nil: %+v", got)
	}
	got, err = s.ContentByGUID(c, ct.GUID)
	must(t, err)
	eq(t, "by guid id", got.ID, ct.ID)
	_, err = s.Content(c, 99999)
	wantErr(t, err, store.ErrNotFound, "Content(missing)")
	_, err = s.ContentByGUID(c, "no-such-guid")
	wantErr(t, err, store.ErrNotFound, "ContentByGUID(missing)")

	upd := *got
	upd.Title, upd.AccessType, upd.AppMode = "New", store.AccessLoggedIn, "shiny"
	upd.MinProcesses, upd.MaxProcesses, upd.MaxConnsPerProcess = intp(1), intp(4), intp(20)
	upd.IdleTimeout, upd.InitTimeout = intp(300), intp(0)
	upd.ConnectionTimeout, upd.ReadTimeout = intp(45), intp(0) // 0: never, not nil
	upd.RVersion, upd.PyVersion, upd.QuartoVersion, upd.RunAs = "4.3.1", "3.11.4", "1.4.5", "runner"
	upd.RVersionWanted, upd.PyVersionWanted, upd.QuartoVersionWanted = "4.4.0", "", "1.5"
	upd.Locked, upd.LockedMessage = true, "Moved to **reports**"
	off, mem, memReq, cpu, cpuReq := false, int64(3<<30), int64(256<<20), 1.5, 0.25
	upd.OutboundNetwork, upd.MemoryLimit, upd.MemoryRequest, upd.CPULimit, upd.CPURequest = &off, &mem, &memReq, &cpu, &cpuReq
	must(t, s.UpdateContent(c, &upd))
	got, err = s.Content(c, ct.ID)
	must(t, err)
	upd.UpdatedAt = got.UpdatedAt
	if !contentEqual(*got, upd) {
		t.Fatalf("after UpdateContent = %+v, want %+v", *got, upd)
	}
	if got.ReadTimeout == nil || *got.ReadTimeout != 0 {
		t.Fatalf("ReadTimeout 0 read back as %v", got.ReadTimeout)
	}
	if *got.InitTimeout != 0 {
		t.Fatalf("InitTimeout 0 read back as %d", *got.InitTimeout)
	}
	bad := upd
	bad.AccessType = "everyone"
	if err := s.UpdateContent(c, &bad); err == nil {
		t.Fatal("UpdateContent accepted access type everyone")
	}
	upd.MinProcesses = nil
	must(t, s.UpdateContent(c, &upd))
	got, err = s.Content(c, ct.ID)
	must(t, err)
	if got.MinProcesses != nil {
		t.Fatalf("MinProcesses reset to nil read back %d", *got.MinProcesses)
	}
	missing := upd
	missing.ID = 99999
	wantErr(t, s.UpdateContent(c, &missing), store.ErrNotFound, "UpdateContent(missing)")

	// Activating bundles.
	b := &store.Bundle{ContentID: ct.ID, Path: "/data/bundles/1.tar.gz", Size: 10}
	must(t, s.CreateBundle(c, b))
	foreign := &store.Bundle{ContentID: second.ID}
	must(t, s.CreateBundle(c, foreign))
	must(t, s.SetContentBundle(c, ct.ID, &b.ID))
	got, err = s.Content(c, ct.ID)
	must(t, err)
	if got.BundleID == nil || *got.BundleID != b.ID {
		t.Fatalf("BundleID = %v, want %d", got.BundleID, b.ID)
	}
	wantErr(t, s.SetContentBundle(c, ct.ID, &foreign.ID), store.ErrNotFound, "activate another content's bundle")
	wantErr(t, s.SetContentBundle(c, ct.ID, i64p(99999)), store.ErrNotFound, "activate missing bundle")
	wantErr(t, s.SetContentBundle(c, 99999, nil), store.ErrNotFound, "activate on missing content")
	must(t, s.SetContentBundle(c, ct.ID, nil))
	got, err = s.Content(c, ct.ID)
	must(t, err)
	if got.BundleID != nil {
		t.Fatalf("BundleID after clearing = %d", *got.BundleID)
	}

	must(t, s.DeleteContent(c, ct.ID))
	_, err = s.Content(c, ct.ID)
	wantErr(t, err, store.ErrNotFound, "deleted content")
	wantErr(t, s.DeleteContent(c, ct.ID), store.ErrNotFound, "DeleteContent twice")
	// The owner of content cannot be deleted out from under it.
	wantErr(t, s.DeleteUser(c, u.ID), store.ErrConflict, "delete user owning content")
	// Ids are not reused after delete.
	again := mkContent(t, s, u.ID, "again")
	if again.ID <= second.ID+1 {
		t.Fatalf("content id %d reused (last was %d)", again.ID, second.ID+1)
	}
}

func contentEqual(a, b store.Content) bool {
	pi := func(x, y *int) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	pb := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	pf := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	pt := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	ok := pi(a.MinProcesses, b.MinProcesses) && pi(a.MaxProcesses, b.MaxProcesses) &&
		pi(a.MaxConnsPerProcess, b.MaxConnsPerProcess) && pi(a.IdleTimeout, b.IdleTimeout) &&
		pi(a.InitTimeout, b.InitTimeout) && pb(a.BundleID, b.BundleID) &&
		pt(a.OutboundNetwork, b.OutboundNetwork) && pb(a.MemoryRequest, b.MemoryRequest) && pb(a.MemoryLimit, b.MemoryLimit) &&
		pf(a.CPURequest, b.CPURequest) && pf(a.CPULimit, b.CPULimit) &&
		pi(a.ConnectionTimeout, b.ConnectionTimeout) && pi(a.ReadTimeout, b.ReadTimeout)
	for _, x := range []*store.Content{&a, &b} {
		x.MinProcesses, x.MaxProcesses, x.MaxConnsPerProcess, x.IdleTimeout, x.InitTimeout, x.BundleID = nil, nil, nil, nil, nil, nil
		x.OutboundNetwork, x.MemoryRequest, x.MemoryLimit, x.CPURequest, x.CPULimit = nil, nil, nil, nil, nil
		x.ConnectionTimeout, x.ReadTimeout = nil, nil
	}
	return ok && a == b
}

func testListContent(t *testing.T, s store.Store) {
	c := ctx(t)
	a := mkUser(t, s, "a", store.RolePublisher)
	b := mkUser(t, s, "b", store.RolePublisher)
	ids := map[string]int64{}
	for _, x := range []struct {
		owner int64
		name  string
		title string
		mode  string
	}{
		{a.ID, "sales-dash", "Sales Dashboard", "shiny"},
		{a.ID, "report", "Weekly 100% Report", "rmd-static"},
		{b.ID, "report", "B's report", "rmd-static"},
		{b.ID, "api", "Prediction API", "python-fastapi"},
	} {
		ct := &store.Content{Name: x.name, Title: x.title, OwnerID: x.owner, AppMode: x.mode}
		must(t, s.CreateContent(c, ct))
		ids[fmt.Sprint(x.owner, x.name)] = ct.ID
	}
	id := func(owner int64, name string) int64 { return ids[fmt.Sprint(owner, name)] }
	// Visibility: a's sales-dash is open to logged-in users, b's api is in
	// viewer v's ACL; the rest is ACL-only.
	v := mkUser(t, s, "v", store.RoleViewer)
	dash, err := s.Content(c, id(a.ID, "sales-dash"))
	must(t, err)
	dash.AccessType = store.AccessLoggedIn
	must(t, s.UpdateContent(c, dash))
	must(t, s.SetPermission(c, &store.Permission{ContentID: id(b.ID, "api"), UserID: v.ID, Role: store.PermViewer}))
	bundle := &store.Bundle{ContentID: id(a.ID, "report")}
	must(t, s.CreateBundle(c, bundle))
	must(t, s.SetContentBundle(c, id(a.ID, "report"), &bundle.ID))
	tests := []struct {
		name  string
		f     store.ContentFilter
		want  []int64
		total int
	}{
		{"all", store.ContentFilter{}, []int64{id(a.ID, "sales-dash"), id(a.ID, "report"), id(b.ID, "report"), id(b.ID, "api")}, 4},
		{"name", store.ContentFilter{Name: "report"}, []int64{id(a.ID, "report"), id(b.ID, "report")}, 2},
		{"name and owner", store.ContentFilter{Name: "report", OwnerID: b.ID}, []int64{id(b.ID, "report")}, 1},
		{"owner", store.ContentFilter{OwnerID: a.ID}, []int64{id(a.ID, "sales-dash"), id(a.ID, "report")}, 2},
		{"name exact, not prefix", store.ContentFilter{Name: "rep"}, nil, 0},
		{"search title case-insensitive", store.ContentFilter{Search: "DASHBOARD"}, []int64{id(a.ID, "sales-dash")}, 1},
		{"search name", store.ContentFilter{Search: "api"}, []int64{id(b.ID, "api")}, 1},
		{"search percent literal", store.ContentFilter{Search: "100%"}, []int64{id(a.ID, "report")}, 1},
		{"app mode", store.ContentFilter{AppMode: "rmd-static"}, []int64{id(a.ID, "report"), id(b.ID, "report")}, 2},
		{"page", store.ContentFilter{Start: 1, Count: 2}, []int64{id(a.ID, "report"), id(b.ID, "report")}, 4},
		{"visible to a viewer", store.ContentFilter{VisibleTo: v.ID}, []int64{id(a.ID, "sales-dash"), id(b.ID, "api")}, 2},
		{"visible to an owner", store.ContentFilter{VisibleTo: b.ID}, []int64{id(a.ID, "sales-dash"), id(b.ID, "report"), id(b.ID, "api")}, 3},
		{"visible and named", store.ContentFilter{VisibleTo: v.ID, Name: "report"}, nil, 0},
		{"deployed only", store.ContentFilter{Deployed: true}, []int64{id(a.ID, "report")}, 1},
		{"words, each in name or title", store.ContentFilter{Words: []string{"REPORT", "weekly"}}, []int64{id(a.ID, "report")}, 1},
		{"words, one missing", store.ContentFilter{Words: []string{"report", "dashboard"}}, nil, 0},
		{"words, visible, paged", store.ContentFilter{Words: []string{"a"}, VisibleTo: b.ID, Start: 1, Count: 1}, []int64{id(b.ID, "api")}, 2},
		{"past the end", store.ContentFilter{Start: 10, Count: 2}, nil, 4},
		{"sort name", store.ContentFilter{Sort: "name"}, []int64{id(b.ID, "api"), id(a.ID, "report"), id(b.ID, "report"), id(a.ID, "sales-dash")}, 4},
		{"sort title", store.ContentFilter{Sort: "title"}, []int64{id(b.ID, "report"), id(b.ID, "api"), id(a.ID, "sales-dash"), id(a.ID, "report")}, 4},
		{"sort created, paged", store.ContentFilter{Sort: "created", Start: 1, Count: 2}, []int64{id(b.ID, "report"), id(a.ID, "report")}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, total, err := s.ListContent(c, tc.f)
			must(t, err)
			var got []int64
			for _, x := range cs {
				got = append(got, x.ID)
			}
			if !slices.Equal(got, tc.want) || total != tc.total {
				t.Fatalf("ListContent(%+v) = %v, %d; want %v, %d", tc.f, got, total, tc.want, tc.total)
			}
		})
	}

	// The ACLs of several items at once, as one at a time.
	must(t, s.SetPermission(c, &store.Permission{ContentID: id(b.ID, "api"), UserID: a.ID, Role: store.PermOwner}))
	all := []int64{id(a.ID, "sales-dash"), id(a.ID, "report"), id(b.ID, "report"), id(b.ID, "api")}
	many, err := s.ContentPermissions(c, all)
	must(t, err)
	for _, cid := range all {
		one, err := s.Permissions(c, cid)
		must(t, err)
		if !slices.Equal(many[cid], one) {
			t.Errorf("ContentPermissions[%d] = %+v; Permissions = %+v", cid, many[cid], one)
		}
	}
	if len(many) != 1 || len(many[id(b.ID, "api")]) != 2 {
		t.Errorf("ContentPermissions = %+v; want the two permissions of b's api only", many)
	}
	if none, err := s.ContentPermissions(c, nil); err != nil || len(none) != 0 {
		t.Errorf("ContentPermissions(nil) = %v, %v", none, err)
	}
}

func testEnvironment(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "envowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "envapp")
	other := mkContent(t, s, u.ID, "other")
	must(t, s.UpdateEnvironment(c, ct.ID, []store.EnvVar{{Name: "B", Value: strp("2")}, {Name: "A", Value: strp("1")}, {Name: "C", Value: strp("")}}))
	must(t, s.UpdateEnvironment(c, other.ID, []store.EnvVar{{Name: "A", Value: strp("other")}}))
	must(t, s.UpdateEnvironment(c, ct.ID, []store.EnvVar{{Name: "A", Value: strp("one")}, {Name: "B", Value: nil}, {Name: "Z", Value: nil}}))
	env, err := s.Environment(c, ct.ID)
	must(t, err)
	if len(env) != 2 || env["A"] != "one" || env["C"] != "" {
		t.Fatalf("Environment = %v, want A=one C=", env)
	}
	names, err := s.EnvironmentNames(c, ct.ID)
	must(t, err)
	if !slices.Equal(names, []string{"A", "C"}) {
		t.Fatalf("EnvironmentNames = %v", names)
	}
	env, err = s.Environment(c, other.ID)
	must(t, err)
	eq(t, "other content's A", env["A"], "other")
	wantErr(t, s.UpdateEnvironment(c, 99999, []store.EnvVar{{Name: "A", Value: strp("x")}}), store.ErrConflict, "env of missing content")
	env, err = s.Environment(c, 99999)
	must(t, err)
	eq(t, "env of missing content", len(env), 0)
}

func testPermissions(t *testing.T, s store.Store) {
	c := ctx(t)
	owner := mkUser(t, s, "powner", store.RolePublisher)
	v := mkUser(t, s, "pviewer", store.RoleViewer)
	w := mkUser(t, s, "pwriter", store.RolePublisher)
	ct := mkContent(t, s, owner.ID, "acl-app")
	p1 := &store.Permission{ContentID: ct.ID, UserID: v.ID, Role: store.PermViewer}
	must(t, s.SetPermission(c, p1))
	p2 := &store.Permission{ContentID: ct.ID, UserID: w.ID, Role: store.PermViewer}
	must(t, s.SetPermission(c, p2))
	// Setting again changes the role, keeps the id.
	p2b := &store.Permission{ContentID: ct.ID, UserID: w.ID, Role: store.PermOwner}
	must(t, s.SetPermission(c, p2b))
	eq(t, "upserted permission id", p2b.ID, p2.ID)
	if err := s.SetPermission(c, &store.Permission{ContentID: ct.ID, UserID: v.ID, Role: "admin"}); err == nil {
		t.Fatal("SetPermission accepted role admin")
	}
	ps, err := s.Permissions(c, ct.ID)
	must(t, err)
	want := []store.Permission{{ID: p1.ID, ContentID: ct.ID, UserID: v.ID, Role: store.PermViewer}, {ID: p2.ID, ContentID: ct.ID, UserID: w.ID, Role: store.PermOwner}}
	if !slices.Equal(ps, want) {
		t.Fatalf("Permissions = %+v, want %+v", ps, want)
	}
	got, err := s.Permission(c, p1.ID)
	must(t, err)
	eq(t, "permission", *got, want[0])
	must(t, s.DeletePermission(c, p1.ID))
	_, err = s.Permission(c, p1.ID)
	wantErr(t, err, store.ErrNotFound, "deleted permission")
	wantErr(t, s.DeletePermission(c, p1.ID), store.ErrNotFound, "DeletePermission twice")
	// Deleting a user removes them from ACLs.
	must(t, s.DeleteUser(c, w.ID))
	ps, err = s.Permissions(c, ct.ID)
	must(t, err)
	eq(t, "permissions after user delete", len(ps), 0)
}

func testBundles(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "bowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "bapp")
	b1 := &store.Bundle{ContentID: ct.ID, Path: "/data/apps/1/1", Size: 1234, CreatedAt: T0}
	must(t, s.CreateBundle(c, b1))
	man := json.RawMessage(`{"version":1,"metadata":{"appmode":"shiny"}}`)
	b2 := &store.Bundle{ContentID: ct.ID, Path: "/data/apps/1/2", Size: 99, Manifest: man}
	must(t, s.CreateBundle(c, b2))
	wantErr(t, s.CreateBundle(c, &store.Bundle{ContentID: 99999}), store.ErrConflict, "bundle of missing content")

	got, err := s.Bundle(c, b1.ID)
	must(t, err)
	eq(t, "path", got.Path, b1.Path)
	eq(t, "size", got.Size, int64(1234))
	eq(t, "created", got.CreatedAt, us(T0))
	if got.Manifest != nil {
		t.Fatalf("unset manifest read back as %s", got.Manifest)
	}
	got, err = s.Bundle(c, b2.ID)
	must(t, err)
	eq(t, "manifest", string(got.Manifest), string(man))
	must(t, s.SetBundleManifest(c, b1.ID, json.RawMessage(`{"a":1}`)))
	got, err = s.Bundle(c, b1.ID)
	must(t, err)
	eq(t, "set manifest", string(got.Manifest), `{"a":1}`)
	wantErr(t, s.SetBundleManifest(c, 99999, nil), store.ErrNotFound, "SetBundleManifest(missing)")

	list, err := s.ListBundles(c, ct.ID)
	must(t, err)
	if len(list) != 2 || list[0].ID != b2.ID || list[1].ID != b1.ID {
		t.Fatalf("ListBundles = %+v, want b2, b1", list)
	}
	// Deleting the active bundle deactivates it.
	must(t, s.SetContentBundle(c, ct.ID, &b2.ID))
	must(t, s.DeleteBundle(c, b2.ID))
	cg, err := s.Content(c, ct.ID)
	must(t, err)
	if cg.BundleID != nil {
		t.Fatalf("content still points at deleted bundle %d", *cg.BundleID)
	}
	_, err = s.Bundle(c, b2.ID)
	wantErr(t, err, store.ErrNotFound, "deleted bundle")
	wantErr(t, s.DeleteBundle(c, b2.ID), store.ErrNotFound, "DeleteBundle twice")
}

func testTasks(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "towner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "tapp")
	task := &store.Task{ContentID: ct.ID, BundleID: 7, UserID: u.ID, Kind: store.TaskDeploy, Node: "n1", CreatedAt: T0}
	must(t, s.CreateTask(c, task))
	if len(task.ID) < 16 {
		t.Fatalf("task id %q too short to be unguessable", task.ID)
	}
	other := &store.Task{Kind: store.TaskRender, Node: "n2", CreatedAt: T0.Add(time.Second)}
	must(t, s.CreateTask(c, other))
	if other.ID == task.ID {
		t.Fatal("two tasks got the same id")
	}
	wantErr(t, s.CreateTask(c, &store.Task{ID: task.ID, Kind: "deploy"}), store.ErrConflict, "duplicate task id")

	got, err := s.Task(c, task.ID)
	must(t, err)
	eq(t, "content", got.ContentID, ct.ID)
	eq(t, "bundle", got.BundleID, int64(7))
	eq(t, "user", got.UserID, u.ID)
	eq(t, "kind", got.Kind, store.TaskDeploy)
	eq(t, "finished", got.Finished, false)
	eq(t, "node", got.Node, "n1")
	eq(t, "created", got.CreatedAt, us(T0))
	if !got.FinishedAt.IsZero() || got.Result != nil {
		t.Fatalf("unfinished task has FinishedAt %v, Result %s", got.FinishedAt, got.Result)
	}
	got, err = s.Task(c, other.ID)
	must(t, err)
	eq(t, "no content", got.ContentID, int64(0))
	_, err = s.Task(c, "missing")
	wantErr(t, err, store.ErrNotFound, "Task(missing)")

	// Output: appended in order, read from an index on.
	must(t, s.AppendTaskOutput(c, task.ID, "line 0", "line 1"))
	must(t, s.AppendTaskOutput(c, task.ID))
	must(t, s.AppendTaskOutput(c, task.ID, "line 2"))
	must(t, s.AppendTaskOutput(c, other.ID, "other 0"))
	wantErr(t, s.AppendTaskOutput(c, "missing", "x"), store.ErrNotFound, "append to missing task")
	for _, tc := range []struct {
		from int
		want []string
	}{{0, []string{"line 0", "line 1", "line 2"}}, {2, []string{"line 2"}}, {3, nil}, {10, nil}} {
		lines, err := s.TaskOutput(c, task.ID, tc.from)
		must(t, err)
		var texts []string
		for i, l := range lines {
			eq(t, "line index", l.Index, tc.from+i)
			texts = append(texts, l.Line)
		}
		if !slices.Equal(texts, tc.want) {
			t.Fatalf("TaskOutput(from %d) = %v, want %v", tc.from, texts, tc.want)
		}
	}

	// Listing.
	for _, tc := range []struct {
		name string
		f    store.TaskFilter
		want []string
	}{
		{"all newest first", store.TaskFilter{}, []string{other.ID, task.ID}},
		{"content", store.TaskFilter{ContentID: ct.ID}, []string{task.ID}},
		{"kind", store.TaskFilter{Kind: store.TaskRender}, []string{other.ID}},
		{"node", store.TaskFilter{Node: "n1"}, []string{task.ID}},
		{"count", store.TaskFilter{Count: 1}, []string{other.ID}},
	} {
		ts, err := s.ListTasks(c, tc.f)
		must(t, err)
		var ids []string
		for _, x := range ts {
			ids = append(ids, x.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Fatalf("ListTasks %s = %v, want %v", tc.name, ids, tc.want)
		}
	}

	// Finishing: once.
	must(t, s.FinishTask(c, task.ID, 0, "", json.RawMessage(`{"ok":true}`), T0.Add(time.Minute)))
	wantErr(t, s.FinishTask(c, task.ID, 1, "again", nil, T0), store.ErrConflict, "FinishTask twice")
	wantErr(t, s.FinishTask(c, "missing", 1, "", nil, T0), store.ErrNotFound, "FinishTask(missing)")
	got, err = s.Task(c, task.ID)
	must(t, err)
	eq(t, "finished", got.Finished, true)
	eq(t, "code", got.Code, 0)
	eq(t, "error", got.Error, "")
	eq(t, "result", string(got.Result), `{"ok":true}`)
	eq(t, "finished at", got.FinishedAt, us(T0.Add(time.Minute)))
	unf, err := s.ListTasks(c, store.TaskFilter{Unfinished: true})
	must(t, err)
	if len(unf) != 1 || unf[0].ID != other.ID {
		t.Fatalf("unfinished tasks = %+v", unf)
	}

	// Failing what a stop interrupted: only unfinished, only the node/kind asked.
	third := &store.Task{Kind: store.TaskDeploy, Node: "n2"}
	must(t, s.CreateTask(c, third))
	n, err := s.FailUnfinishedTasks(c, "n2", store.TaskDeploy, "server stopped", T0.Add(time.Hour))
	must(t, err)
	eq(t, "failed tasks", n, int64(1))
	got, err = s.Task(c, third.ID)
	must(t, err)
	if !got.Finished || got.Code == 0 || got.Error != "server stopped" {
		t.Fatalf("interrupted task = %+v", got)
	}
	got, err = s.Task(c, other.ID)
	must(t, err)
	eq(t, "render task left alone", got.Finished, false)
	n, err = s.FailUnfinishedTasks(c, "", "", "stop", T0)
	must(t, err)
	eq(t, "failed tasks (all)", n, int64(1))
	got, err = s.Task(c, task.ID)
	must(t, err)
	eq(t, "finished task kept its code", got.Code, 0)
}

// testTaskOutputConcurrent: concurrent appenders get distinct, gapless indexes.
func testTaskOutputConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	task := &store.Task{Kind: store.TaskDeploy}
	must(t, s.CreateTask(c, task))
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.AppendTaskOutput(c, task.ID, fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lines, err := s.TaskOutput(c, task.ID, 0)
	must(t, err)
	eq(t, "lines", len(lines), writers*each)
	last := map[int]int{}
	for i, l := range lines {
		eq(t, "index", l.Index, i)
		var w, n int
		if _, err := fmt.Sscanf(l.Line, "w%d-%d", &w, &n); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[w]; ok && n != prev+1 {
			t.Fatalf("writer %d's lines out of order: %d after %d", w, n, prev)
		}
		last[w] = n
	}
}

func testRenders(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "rowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "doc")
	r1 := &store.Render{ContentID: ct.ID, BundleID: 3, TaskID: "t1", Node: "n1", CreatedAt: T0}
	must(t, s.CreateRender(c, r1))
	eq(t, "default status", r1.Status, store.RenderQueued)
	got, err := s.Render(c, r1.ID)
	must(t, err)
	eq(t, "render", *got, store.Render{ID: r1.ID, ContentID: ct.ID, BundleID: 3, TaskID: "t1", Status: store.RenderQueued, Node: "n1", CreatedAt: us(T0)})
	_, err = s.Render(c, 99999)
	wantErr(t, err, store.ErrNotFound, "Render(missing)")

	r1.Status, r1.StartedAt, r1.OutputDir = store.RenderRunning, T0.Add(time.Second), "/data/renders/1"
	must(t, s.UpdateRender(c, r1))
	r1.Status, r1.FinishedAt = store.RenderSucceeded, T0.Add(time.Minute)
	must(t, s.UpdateRender(c, r1))
	got, err = s.Render(c, r1.ID)
	must(t, err)
	eq(t, "status", got.Status, store.RenderSucceeded)
	eq(t, "output", got.OutputDir, "/data/renders/1")
	eq(t, "started", got.StartedAt, us(T0.Add(time.Second)))
	eq(t, "finished", got.FinishedAt, us(T0.Add(time.Minute)))
	bad := *r1
	bad.Status = "exploded"
	if err := s.UpdateRender(c, &bad); err == nil {
		t.Fatal("UpdateRender accepted status exploded")
	}
	missing := *r1
	missing.ID = 99999
	wantErr(t, s.UpdateRender(c, &missing), store.ErrNotFound, "UpdateRender(missing)")

	r2 := &store.Render{ContentID: ct.ID, Status: store.RenderRunning, Node: "n1"}
	must(t, s.CreateRender(c, r2))
	r3 := &store.Render{ContentID: ct.ID, Status: store.RenderQueued, Node: "n2"}
	must(t, s.CreateRender(c, r3))

	latest, err := s.LatestRender(c, ct.ID, store.RenderSucceeded)
	must(t, err)
	eq(t, "latest succeeded", latest.ID, r1.ID)
	_, err = s.LatestRender(c, ct.ID, store.RenderFailed)
	wantErr(t, err, store.ErrNotFound, "no failed render")

	list, err := s.ListRenders(c, ct.ID, 0)
	must(t, err)
	if len(list) != 3 || list[0].ID != r3.ID || list[2].ID != r1.ID {
		t.Fatalf("ListRenders = %+v", list)
	}
	list, err = s.ListRenders(c, ct.ID, 1)
	must(t, err)
	eq(t, "ListRenders count 1", len(list), 1)

	n, err := s.FailRunningRenders(c, "n1", "server was killed", T0.Add(time.Hour))
	must(t, err)
	eq(t, "failed renders on n1", n, int64(1))
	got, err = s.Render(c, r2.ID)
	must(t, err)
	eq(t, "interrupted status", got.Status, store.RenderFailed)
	eq(t, "interrupted error", got.Error, "server was killed")
	eq(t, "interrupted finished", got.FinishedAt, us(T0.Add(time.Hour)))
	got, err = s.Render(c, r3.ID)
	must(t, err)
	eq(t, "other node's render", got.Status, store.RenderQueued)
	got, err = s.Render(c, r1.ID)
	must(t, err)
	eq(t, "succeeded render untouched", got.Status, store.RenderSucceeded)
	n, err = s.FailRunningRenders(c, "", "x", T0)
	must(t, err)
	eq(t, "failed renders on all nodes", n, int64(1))
	latest, err = s.LatestRender(c, ct.ID, store.RenderFailed)
	must(t, err)
	eq(t, "latest failed", latest.ID, r3.ID)
}

func testSchedules(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "sowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "sdoc")
	ct2 := mkContent(t, s, u.ID, "sdoc2")
	sc := &store.Schedule{ContentID: ct.ID, Cron: "*/5 * * * *", Timezone: "Europe/Berlin", Enabled: true, NextRunAt: T0}
	must(t, s.CreateSchedule(c, sc))
	iv := &store.Schedule{ContentID: ct2.ID, IntervalSeconds: 3600, Enabled: true, NextRunAt: T0.Add(time.Hour)}
	must(t, s.CreateSchedule(c, iv))
	off := &store.Schedule{ContentID: ct2.ID, IntervalSeconds: 60, Enabled: false, NextRunAt: T0.Add(-time.Hour)}
	must(t, s.CreateSchedule(c, off))
	wantErr(t, s.CreateSchedule(c, &store.Schedule{ContentID: 99999, NextRunAt: T0}), store.ErrConflict, "schedule of missing content")

	got, err := s.Schedule(c, sc.ID)
	must(t, err)
	eq(t, "cron", got.Cron, "*/5 * * * *")
	eq(t, "tz", got.Timezone, "Europe/Berlin")
	eq(t, "enabled", got.Enabled, true)
	eq(t, "next", got.NextRunAt, us(T0))
	if !got.LastRunAt.IsZero() {
		t.Fatalf("LastRunAt = %v, want zero", got.LastRunAt)
	}
	_, err = s.Schedule(c, 99999)
	wantErr(t, err, store.ErrNotFound, "Schedule(missing)")

	all, err := s.ListSchedules(c, 0)
	must(t, err)
	eq(t, "all schedules", len(all), 3)
	mine, err := s.ListSchedules(c, ct2.ID)
	must(t, err)
	if len(mine) != 2 || mine[0].ID != iv.ID || mine[1].ID != off.ID {
		t.Fatalf("ListSchedules(ct2) = %+v", mine)
	}

	for _, tc := range []struct {
		at   time.Time
		want []int64
	}{
		{T0.Add(-time.Second), nil},
		{T0, []int64{sc.ID}},
		{T0.Add(2 * time.Hour), []int64{sc.ID, iv.ID}},
	} {
		due, err := s.DueSchedules(c, tc.at)
		must(t, err)
		var ids []int64
		for _, d := range due {
			ids = append(ids, d.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Fatalf("DueSchedules(%v) = %v, want %v", tc.at, ids, tc.want)
		}
	}

	// Claim: compare-and-swap on the next run time.
	now := T0.Add(3 * time.Hour) // the server was down for three hours
	next := now.Add(5 * time.Minute)
	ok, err := s.ClaimSchedule(c, sc.ID, T0.Add(time.Second), next, now, "n1")
	must(t, err)
	eq(t, "claim with a stale expected time", ok, false)
	ok, err = s.ClaimSchedule(c, sc.ID, got.NextRunAt, next, now, "n1")
	must(t, err)
	eq(t, "claim", ok, true)
	ok, err = s.ClaimSchedule(c, sc.ID, got.NextRunAt, next, now, "n2")
	must(t, err)
	eq(t, "second claim of the same run", ok, false)
	ok, err = s.ClaimSchedule(c, off.ID, us(T0.Add(-time.Hour)), next, now, "n1")
	must(t, err)
	eq(t, "claim of a disabled schedule", ok, false)
	ok, err = s.ClaimSchedule(c, 99999, T0, next, now, "n1")
	must(t, err)
	eq(t, "claim of a missing schedule", ok, false)
	if _, err := s.ClaimSchedule(c, sc.ID, us(next), now, now, "n1"); err == nil {
		t.Fatal("ClaimSchedule accepted a next run time not after now: the run could be claimed again")
	}
	got, err = s.Schedule(c, sc.ID)
	must(t, err)
	eq(t, "next after claim", got.NextRunAt, us(next))
	eq(t, "last run", got.LastRunAt, us(now))
	eq(t, "last node", got.LastNode, "n1")
	due, err := s.DueSchedules(c, now)
	must(t, err)
	for _, d := range due {
		if d.ID == sc.ID {
			t.Fatal("claimed schedule still due: a missed schedule would run again")
		}
	}

	got.Cron, got.IntervalSeconds, got.Enabled, got.NextRunAt, got.Timezone = "", 120, false, T0, "UTC"
	must(t, s.UpdateSchedule(c, got))
	again, err := s.Schedule(c, sc.ID)
	must(t, err)
	eq(t, "updated interval", again.IntervalSeconds, int64(120))
	eq(t, "updated enabled", again.Enabled, false)
	eq(t, "updated next", again.NextRunAt, us(T0))
	eq(t, "updated tz", again.Timezone, "UTC")
	missing := *again
	missing.ID = 99999
	wantErr(t, s.UpdateSchedule(c, &missing), store.ErrNotFound, "UpdateSchedule(missing)")

	must(t, s.DeleteSchedule(c, sc.ID))
	_, err = s.Schedule(c, sc.ID)
	wantErr(t, err, store.ErrNotFound, "deleted schedule")
	wantErr(t, s.DeleteSchedule(c, sc.ID), store.ErrNotFound, "DeleteSchedule twice")
}

// testClaimRace: goroutines (over the given stores, round robin) race to
// claim one due schedule; exactly one wins each round.
func testClaimRace(t *testing.T, stores []store.Store) {
	c := ctx(t)
	s := stores[0]
	u := mkUser(t, s, "raceowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "racedoc")
	sc := &store.Schedule{ContentID: ct.ID, IntervalSeconds: 60, Enabled: true, NextRunAt: T0}
	must(t, s.CreateSchedule(c, sc))
	const rounds, racers = 20, 4
	expected := us(T0)
	for round := range rounds {
		now := expected.Add(30 * time.Second)
		next := expected.Add(time.Minute)
		var wg sync.WaitGroup
		wins := make(chan string, racers)
		errs := make(chan error, racers)
		start := make(chan struct{})
		for r := range racers {
			st := stores[r%len(stores)]
			node := fmt.Sprintf("node%d", r)
			wg.Go(func() {
				<-start
				// Each racer does what a scheduler does: read due, then claim.
				due, err := st.DueSchedules(c, now)
				if err != nil {
					errs <- err
					return
				}
				for _, d := range due {
					ok, err := st.ClaimSchedule(c, d.ID, d.NextRunAt, next, now, node)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						wins <- node
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(wins)
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		var winners []string
		for w := range wins {
			winners = append(winners, w)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d winners %v, want exactly 1", round, len(winners), winners)
		}
		got, err := s.Schedule(c, sc.ID)
		must(t, err)
		eq(t, "winner recorded", got.LastNode, winners[0])
		expected = next
	}
}

func testJobs(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "jowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "japp")
	j1 := &store.Job{ContentID: ct.ID, BundleID: 2, Tag: "run_app", PID: 4242, Node: "n1", LogPath: "/data/jobs/1.log", StartedAt: T0}
	must(t, s.CreateJob(c, j1))
	if j1.ID == 0 || j1.Key == "" {
		t.Fatalf("CreateJob did not fill ID and Key: %+v", j1)
	}
	j2 := &store.Job{ContentID: ct.ID, Tag: "render"}
	must(t, s.CreateJob(c, j2))
	wantErr(t, s.CreateJob(c, &store.Job{Key: j1.Key, ContentID: ct.ID}), store.ErrConflict, "duplicate job key")

	got, err := s.Job(c, j1.Key)
	must(t, err)
	if got.ExitCode != nil || !got.EndedAt.IsZero() {
		t.Fatalf("running job has exit code or end: %+v", got)
	}
	eq(t, "pid", got.PID, 4242)
	eq(t, "tag", got.Tag, "run_app")
	eq(t, "log", got.LogPath, "/data/jobs/1.log")
	eq(t, "started", got.StartedAt, us(T0))
	_, err = s.Job(c, "missing")
	wantErr(t, err, store.ErrNotFound, "Job(missing)")

	must(t, s.FinishJob(c, j1.Key, 137, "killed: over its 256 MB memory limit", T0.Add(time.Minute)))
	wantErr(t, s.FinishJob(c, "missing", 0, "", T0), store.ErrNotFound, "FinishJob(missing)")
	got, err = s.Job(c, j1.Key)
	must(t, err)
	if got.ExitCode == nil || *got.ExitCode != 137 {
		t.Fatalf("exit code = %v, want 137", got.ExitCode)
	}
	eq(t, "ended", got.EndedAt, us(T0.Add(time.Minute)))
	eq(t, "exit reason", got.ExitReason, "killed: over its 256 MB memory limit")

	list, err := s.ListJobs(c, ct.ID, 0)
	must(t, err)
	if len(list) != 2 || list[0].Key != j2.Key || list[1].Key != j1.Key {
		t.Fatalf("ListJobs = %+v", list)
	}
	list, err = s.ListJobs(c, ct.ID, 1)
	must(t, err)
	eq(t, "ListJobs count 1", len(list), 1)

	// j1 ended above; j2 runs.
	running, err := s.RunningJobs(c)
	must(t, err)
	var keys []string
	for _, j := range running {
		if j.ContentID == ct.ID {
			keys = append(keys, j.Key)
		}
	}
	if len(keys) != 1 || keys[0] != j2.Key {
		t.Fatalf("RunningJobs of the content = %v, want [%s]", keys, j2.Key)
	}
}

// testDeleteCascades: deleting content removes everything hanging off it.
func testDeleteCascades(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "cowner", store.RolePublisher)
	v := mkUser(t, s, "cviewer", store.RoleViewer)
	ct := mkContent(t, s, u.ID, "doomed")
	keep := mkContent(t, s, u.ID, "kept")
	b := &store.Bundle{ContentID: ct.ID}
	must(t, s.CreateBundle(c, b))
	must(t, s.SetContentBundle(c, ct.ID, &b.ID))
	must(t, s.UpdateEnvironment(c, ct.ID, []store.EnvVar{{Name: "K", Value: strp("v")}}))
	must(t, s.SetPermission(c, &store.Permission{ContentID: ct.ID, UserID: v.ID, Role: store.PermViewer}))
	task := &store.Task{ContentID: ct.ID, Kind: store.TaskDeploy}
	must(t, s.CreateTask(c, task))
	must(t, s.AppendTaskOutput(c, task.ID, "x"))
	keptTask := &store.Task{ContentID: keep.ID, Kind: store.TaskDeploy}
	must(t, s.CreateTask(c, keptTask))
	r := &store.Render{ContentID: ct.ID}
	must(t, s.CreateRender(c, r))
	sc := &store.Schedule{ContentID: ct.ID, Enabled: true, IntervalSeconds: 60, NextRunAt: T0}
	must(t, s.CreateSchedule(c, sc))
	j := &store.Job{ContentID: ct.ID}
	must(t, s.CreateJob(c, j))

	must(t, s.DeleteContent(c, ct.ID))
	gone := map[string]func() error{
		"bundle":   func() error { _, err := s.Bundle(c, b.ID); return err },
		"task":     func() error { _, err := s.Task(c, task.ID); return err },
		"render":   func() error { _, err := s.Render(c, r.ID); return err },
		"schedule": func() error { _, err := s.Schedule(c, sc.ID); return err },
		"job":      func() error { _, err := s.Job(c, j.Key); return err },
	}
	for name, get := range gone {
		wantErr(t, get(), store.ErrNotFound, name+" after content delete")
	}
	env, err := s.Environment(c, ct.ID)
	must(t, err)
	eq(t, "env after delete", len(env), 0)
	ps, err := s.Permissions(c, ct.ID)
	must(t, err)
	eq(t, "permissions after delete", len(ps), 0)
	lines, err := s.TaskOutput(c, task.ID, 0)
	must(t, err)
	eq(t, "task output after delete", len(lines), 0)
	_, err = s.Task(c, keptTask.ID)
	must(t, err)
	// A deleted user's tasks stay, without the user.
	ut := &store.Task{UserID: v.ID, Kind: store.TaskRender}
	must(t, s.CreateTask(c, ut))
	must(t, s.DeleteUser(c, v.ID))
	got, err := s.Task(c, ut.ID)
	must(t, err)
	eq(t, "task user after user delete", got.UserID, int64(0))
}

func testMisc(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Ping(c))
	v, err := s.DatabaseVersion(c)
	must(t, err)
	eq(t, "database version", v, store.SchemaVersion())
	if d := s.Dialect(); d != store.DialectSQLite && d != store.DialectPostgres {
		t.Fatalf("Dialect() = %q", d)
	}
}

func testSettings(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Setting(c, "secret")
	wantErr(t, err, store.ErrNotFound, "Setting(unset)")
	got, err := s.SetSettingIfAbsent(c, "secret", "first")
	must(t, err)
	eq(t, "first SetSettingIfAbsent", got, "first")
	got, err = s.SetSettingIfAbsent(c, "secret", "second")
	must(t, err)
	eq(t, "second SetSettingIfAbsent", got, "first")
	must(t, s.SetSetting(c, "secret", "third"))
	must(t, s.SetSetting(c, "other", ""))
	got, err = s.Setting(c, "secret")
	must(t, err)
	eq(t, "after SetSetting", got, "third")
	got, err = s.Setting(c, "other")
	must(t, err)
	eq(t, "empty value", got, "")
}

// testVisibleTotals: a page's total of the content a user may see (counted
// apart from the page, in parts: open to all or logged-in users, and ACL
// content owned or reached through a permission) is the length of the
// whole list, however the ways in overlap: an owner with a permission on
// their own content, a permission of the user and of a group of theirs on
// one item, a permission on content that is open anyway.
func testVisibleTotals(t *testing.T, s store.Store) {
	c := ctx(t)
	pub := mkUser(t, s, "pub", store.RolePublisher)
	other := mkUser(t, s, "other", store.RolePublisher)
	v := mkUser(t, s, "v", store.RoleViewer)
	outsider := mkUser(t, s, "outsider", store.RoleViewer)
	g := &store.Group{Name: "readers", OwnerID: pub.ID}
	must(t, s.CreateGroup(c, g))
	must(t, s.AddGroupMember(c, g.ID, v.ID))
	must(t, s.AddGroupMember(c, g.ID, pub.ID))
	mk := func(owner int64, name, access, title string) int64 {
		ct := &store.Content{Name: name, Title: title, OwnerID: owner, AccessType: access}
		must(t, s.CreateContent(c, ct))
		return ct.ID
	}
	open := mk(other.ID, "open", store.AccessAll, "Open report")
	mk(other.ID, "logged", store.AccessLoggedIn, "Logged-in report")
	mine := mk(pub.ID, "mine", store.AccessACL, "Own report")
	mineOpen := mk(pub.ID, "mine-open", store.AccessAll, "Own open report")
	both := mk(other.ID, "both", store.AccessACL, "Shared report")
	viaGroup := mk(other.ID, "group", store.AccessACL, "Group dashboard")
	mk(other.ID, "hidden", store.AccessACL, "Hidden report")
	for _, p := range []store.Permission{
		{ContentID: mine, UserID: pub.ID, Role: store.PermOwner},
		{ContentID: mine, GroupID: g.ID, Role: store.PermViewer},
		{ContentID: mineOpen, UserID: v.ID, Role: store.PermViewer},
		{ContentID: open, UserID: v.ID, Role: store.PermViewer},
		{ContentID: both, UserID: v.ID, Role: store.PermViewer},
		{ContentID: both, GroupID: g.ID, Role: store.PermViewer},
		{ContentID: viaGroup, GroupID: g.ID, Role: store.PermViewer},
	} {
		must(t, s.SetPermission(c, &p))
	}
	for _, u := range []*store.User{pub, other, v, outsider} {
		for _, f := range []store.ContentFilter{{}, {Words: []string{"report"}}, {AppMode: ""}, {OwnerID: other.ID}, {Name: "both"}} {
			f.VisibleTo = u.ID
			all, total, err := s.ListContent(c, f)
			must(t, err)
			if total != len(all) {
				t.Fatalf("%s, %+v: unpaged total %d of %d items", u.Username, f, total, len(all))
			}
			for start := range len(all) + 1 {
				f.Start, f.Count = start, 1
				page, total, err := s.ListContent(c, f)
				must(t, err)
				if total != len(all) {
					t.Fatalf("%s, %+v: a page's total is %d, the list has %d: %v", u.Username, f, total, len(all), names(all))
				}
				if start < len(all) && (len(page) != 1 || page[0].ID != all[start].ID) {
					t.Fatalf("%s, %+v: page %v, want item %d of %v", u.Username, f, names(page), start, names(all))
				}
			}
		}
	}
	// What each sees, for the record: the rule itself is ListContent's test.
	want := map[*store.User]int{pub: 6, other: 6, v: 6, outsider: 3}
	for u, n := range want {
		_, total, err := s.ListContent(c, store.ContentFilter{VisibleTo: u.ID, Count: 2})
		must(t, err)
		if total != n {
			t.Errorf("%s sees %d items, want %d", u.Username, total, n)
		}
	}
}

func names(cs []store.Content) []string {
	var out []string
	for _, x := range cs {
		out = append(out, x.Name)
	}
	return out
}

// testWordSearch: a search of words finds each in the name or the title,
// case-insensitive, as a substring, and follows renames and deletes; a
// page's total is the whole list's length.
func testWordSearch(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "pub", store.RolePublisher)
	mk := func(name, title string) *store.Content {
		ct := &store.Content{Name: name, Title: title, OwnerID: u.ID}
		must(t, s.CreateContent(c, ct))
		return ct
	}
	sales := mk("sales-dash", "Quarterly Sales Dashboard")
	mk("api", `The "quoted" API`)
	mk("ecole", "école d'été")
	gone := mk("old-report", "Report to delete")
	search := func(words ...string) []string {
		t.Helper()
		all, total, err := s.ListContent(c, store.ContentFilter{Words: words})
		must(t, err)
		_, paged, err := s.ListContent(c, store.ContentFilter{Words: words, Count: 1})
		must(t, err)
		if total != len(all) || paged != len(all) {
			t.Fatalf("words %q: %d items, totals %d and %d", words, len(all), total, paged)
		}
		out := names(all)
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"SALES"}, []string{"sales-dash"}},
		{[]string{"arterl"}, []string{"sales-dash"}},            // inside a word of the title
		{[]string{"es-d"}, []string{"sales-dash"}},              // inside the name
		{[]string{"sa"}, []string{"sales-dash"}},                // shorter than a trigram
		{[]string{"dash", "quarterly"}, []string{"sales-dash"}}, // every word
		{[]string{"dash", "api"}, nil},
		{[]string{`"quoted"`}, []string{"api"}},
		{[]string{"école"}, []string{"ecole"}},
		{[]string{"report"}, []string{"old-report"}},
		{[]string{"to delete"}, []string{"old-report"}}, // one term with a space (Search)
	} {
		if got := search(tc.words...); !slices.Equal(got, tc.want) {
			t.Errorf("words %q = %v, want %v", tc.words, got, tc.want)
		}
	}
	sales.Title = "Monthly figures"
	must(t, s.UpdateContent(c, sales))
	if got := search("quarterly"); len(got) != 0 {
		t.Errorf("the old title still found: %v", got)
	}
	if got := search("monthly"); !slices.Equal(got, []string{"sales-dash"}) {
		t.Errorf("the new title: %v", got)
	}
	must(t, s.DeleteContent(c, gone.ID))
	if got := search("report"); len(got) != 0 {
		t.Errorf("deleted content found: %v", got)
	}
	all, _, err := s.ListContent(c, store.ContentFilter{Search: "MONTH"})
	must(t, err)
	if !slices.Equal(names(all), []string{"sales-dash"}) {
		t.Errorf("Search MONTH = %v", names(all))
	}
}
