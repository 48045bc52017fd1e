package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// TestDashboardList: the content list searches, filters by type and owner
// and pages in SQL, and a viewer's list (and count) holds only what the
// access rule lets them open, however it is filtered or paged.
func TestDashboardList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pub, viewer := f.users["publisher"], f.users["viewer"]
	// 120 of the publisher's: every third shiny and open to all logged-in
	// users, the rest acl-only APIs; titles "Report n", "Sales n" alternate.
	for i := 0; i < 120; i++ {
		c := &store.Content{Name: fmt.Sprintf("item-%03d", i), OwnerID: pub.ID, AccessType: store.AccessACL, AppMode: "api"}
		c.Title = fmt.Sprintf("Report %d", i)
		if i%2 == 1 {
			c.Title = fmt.Sprintf("Sales %d", i)
		}
		if i%3 == 0 {
			c.AccessType, c.AppMode = store.AccessLoggedIn, "shiny"
		}
		if err := f.st.CreateContent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	login := func(user, pw string) {
		t.Helper()
		resp, err := client.PostForm(f.ts.URL+"/__login__", url.Values{"username": {user}, "password": {pw}, "next": {"/connect/"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("login %s: %d", user, resp.StatusCode)
		}
	}
	rows := regexp.MustCompile(`<a href="/connect/apps/[0-9a-f-]+">([^<]*)</a>`)
	get := func(query string) (titles []string, body string) {
		t.Helper()
		resp, err := client.Get(f.ts.URL + "/connect/" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /connect/%s: %d %s", query, resp.StatusCode, b)
		}
		for _, m := range rows.FindAllStringSubmatch(string(b), -1) {
			titles = append(titles, m[1])
		}
		return titles, string(b)
	}

	login("publisher1", "pw-publisher")
	titles, body := get("")
	if len(titles) != dashboardLimit || !strings.Contains(body, "1–50 of 120") || !strings.Contains(body, `href="/connect/?page=2"`) {
		t.Fatalf("first page: %d rows, want %d, count and a next link:\n%s", len(titles), dashboardLimit, body)
	}
	// The most recently changed first (all made at once: the newest id
	// breaks the tie); a change moves an item to the top; the other
	// orders when asked for, kept in the paging links.
	if titles[0] != "Sales 119" || !strings.Contains(body, `<option value="updated" selected>`) {
		t.Errorf("default order starts %v, want Sales 119 (the last changed) and the select saying so", titles[:3])
	}
	old, _, err := f.st.ListContent(ctx, store.ContentFilter{Name: "item-004"})
	if err != nil || len(old) != 1 {
		t.Fatalf("item-004: %v %d", err, len(old))
	}
	old[0].Title = "Report 4, revised"
	if err := f.st.UpdateContent(ctx, &old[0]); err != nil {
		t.Fatal(err)
	}
	for query, first := range map[string][]string{
		"":              {"Report 4, revised", "Sales 119", "Report 118"},
		"?sort=junk":    {"Report 4, revised", "Sales 119", "Report 118"},
		"?sort=oldest":  {"Report 0", "Sales 1", "Report 2"},
		"?sort=created": {"Sales 119", "Report 118", "Sales 117"},
		"?sort=title":   {"Report 0", "Report 10", "Report 100"},
	} {
		if titles, _ := get(query); !slices.Equal(titles[:3], first) {
			t.Errorf("GET /connect/%s starts %v, want %v", query, titles[:3], first)
		}
	}
	if _, body := get("?sort=oldest"); !strings.Contains(body, `href="/connect/?page=2&amp;sort=oldest"`) {
		t.Errorf("sort=oldest: the next page's link loses the order:\n%s", body)
	}
	titles, body = get("?page=3")
	if len(titles) != 20 || !strings.Contains(body, "101–120 of 120") || !strings.Contains(body, `rel="prev" href="/connect/?page=2"`) || strings.Contains(body, `rel="next"`) {
		t.Fatalf("last page: %d rows:\n%s", len(titles), body)
	}
	// Two words, both must match (name or title, any case); the filters
	// stay in the paging links.
	titles, body = get("?q=SALES+1&type=shiny")
	for _, ti := range titles {
		if !strings.HasPrefix(ti, "Sales ") || !strings.Contains(ti, "1") {
			t.Errorf("search sales 1, type shiny: got %q", ti)
		}
	}
	want := 0 // odd (Sales), a multiple of 3 (shiny), a 1 in the number
	for i := 0; i < 120; i++ {
		if i%2 == 1 && i%3 == 0 && strings.Contains(fmt.Sprint(i), "1") {
			want++
		}
	}
	if len(titles) != want || want == 0 {
		t.Fatalf("search: %d rows, want %d: %v", len(titles), want, titles)
	}
	if !strings.Contains(body, `value="SALES 1"`) || !strings.Contains(body, `<option value="shiny" selected>`) {
		t.Errorf("the form does not keep the query:\n%s", body)
	}
	if titles, _ = get("?owner=admin1"); len(titles) != 0 {
		t.Errorf("owner admin1: %d rows, want none", len(titles))
	}
	if titles, body = get("?owner=nobody-here"); len(titles) != 0 || !strings.Contains(body, "Nothing matches") {
		t.Errorf("unknown owner: %d rows", len(titles))
	}
	if titles, _ = get("?owner=publisher1&type=api"); len(titles) != dashboardLimit {
		t.Errorf("owner publisher1, type api: %d rows, want a full page", len(titles))
	}

	// The viewer: only the 40 logged_in items, in the list and its count.
	jar2, _ := cookiejar.New(nil)
	client.Jar = jar2
	login("viewer1", "pw-viewer")
	titles, body = get("")
	if !strings.Contains(body, "1–40 of 40") || len(titles) != 40 || strings.Contains(body, `rel="next"`) {
		t.Fatalf("viewer: %d rows, want the 40 logged_in items:\n%s", len(titles), body)
	}
	if strings.Count(body, `<td class="wide">logged-in users</td>`) != 40 {
		t.Errorf("viewer: the access of the 40 items is not said in words:\n%s", body)
	}
	if titles, _ = get("?type=api"); len(titles) != 0 {
		t.Errorf("viewer sees %d acl-only items filtered by type", len(titles))
	}
	// Given a viewer permission on one acl item, that one appears too.
	acls, _, err := f.st.ListContent(ctx, store.ContentFilter{Name: "item-001"})
	if err != nil || len(acls) != 1 {
		t.Fatalf("item-001: %v %d", err, len(acls))
	}
	acl := acls[0]
	if err := f.st.SetPermission(ctx, &store.Permission{ContentID: acl.ID, UserID: viewer.ID, Role: store.PermViewer}); err != nil {
		t.Fatal(err)
	}
	if titles, _ = get("?type=api"); len(titles) != 1 || titles[0] != "Sales 1" {
		t.Errorf("viewer with a permission on item-001: %v", titles)
	}
	// A bad page number is page 1, not an error.
	if titles, _ = get("?page=-4"); len(titles) != 41 {
		t.Errorf("page=-4: %d rows", len(titles))
	}
}
