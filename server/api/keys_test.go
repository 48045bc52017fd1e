package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
)

// TestKeysPage: a user creates an API key on /connect/keys, sees it once
// (not on the next visit), the key works with the API, the list shows it,
// another user cannot delete it through the API, and deleting it on the
// page makes the API refuse it. In chromium at 1280 and 390 px: create,
// copy, delete.
func TestKeysPage(t *testing.T) {
	f := newFixture(t)
	pub := f.login(t, "publisher")
	st, body := pub.get(t, "/connect/keys")
	if st != 200 {
		t.Fatalf("keys page: %d", st)
	}
	csrf := csrfOf(body)
	if st, _ := pub.post(t, "/connect/keys/create", url.Values{"name": {"laptop"}}); st != http.StatusForbidden {
		t.Errorf("create without CSRF token: %d, want 403", st)
	}
	st, body = pub.post(t, "/connect/keys/create", url.Values{"csrf": {csrf}, "name": {"laptop"}})
	m := regexp.MustCompile(`id="newkey" class="key" value="([0-9a-f]{32})"`).FindStringSubmatch(body)
	if st != 200 || m == nil {
		t.Fatalf("create: %d %s", st, body)
	}
	key := m[1]
	who := func(k string) (int, string) {
		req, _ := http.NewRequest("GET", f.ts.URL+"/__api__/v1/user", nil)
		req.Header.Set("Authorization", "Key "+k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if st, b := who(key); st != 200 || !strings.Contains(b, "publisher1") {
		t.Fatalf("the new key: %d %s", st, b)
	}
	_, body = pub.get(t, "/connect/keys")
	contains(t, "keys page", body, "laptop", "<code>"+key[:6]+"…</code>")
	if strings.Contains(body, key) {
		t.Fatal("the key is shown again")
	}
	idm := regexp.MustCompile(`name="id" value="(\d+)"><input type="hidden" name="name" value="laptop"`).FindStringSubmatch(body)
	if idm == nil {
		t.Fatalf("no delete form for laptop: %s", body)
	}
	// Someone else's key is not found for another user.
	if a := f.do(t, "DELETE", "/__api__/keys/"+idm[1], "viewer", ""); a.status != http.StatusNotFound {
		t.Errorf("viewer deletes the publisher's key: %d, want 404", a.status)
	}
	if st, _ := who(key); st != 200 {
		t.Fatalf("the key after another user's delete: %d", st)
	}
	st, body = pub.post(t, "/connect/keys/delete", url.Values{"csrf": {csrf}, "id": {idm[1]}, "name": {"laptop"}})
	if st != 200 || !strings.Contains(body, "Deleted the key laptop.") {
		t.Fatalf("delete: %d %s", st, body)
	}
	if st, _ := who(key); st != http.StatusUnauthorized {
		t.Fatalf("the deleted key: %d, want 401", st)
	}

	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			br.Run("log in", chromedp.Navigate(f.ts.URL+"/__login__?next=/connect/keys"),
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "publisher1"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-publisher"),
				chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
				chromedp.WaitVisible(chromedp.CSS(`form[action="/connect/keys/create"]`)))
			br.Check("keys")
			name := fmt.Sprintf("browser-%d", width)
			br.Run("create", chromedp.SendKeys(chromedp.CSS(`form[action="/connect/keys/create"] input[name="name"]`), name),
				chromedp.Click(chromedp.CSS(`form[action="/connect/keys/create"] button`)),
				chromedp.WaitVisible(chromedp.ID("newkey")))
			k := db.Value(br, "key", chromedp.Evaluate[string](`document.getElementById("newkey").value`))
			if st, _ := who(k); st != 200 {
				t.Fatalf("the key made in the browser: %d", st)
			}
			br.Run("copy", chromedp.Click(chromedp.ID("copy")), chromedp.Poll[chromedp.Void](`document.getElementById("copied").textContent === "Copied."`))
			br.Check("keys-created")
			br.Screenshot("keys-created")
			br.Run("delete", chromedp.Click(chromedp.CSS(`button[aria-label="Delete key `+name+`"]`)),
				chromedp.WaitVisible(chromedp.CSS(`p.banner.ok`)))
			if st, _ := who(k); st != http.StatusUnauthorized {
				t.Fatalf("the key deleted in the browser: %d", st)
			}
			br.Check("keys-deleted")
			br.Screenshot("keys")
		})
	}
}
