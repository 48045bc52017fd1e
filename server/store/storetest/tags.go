package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

func tagNames(ts []store.Tag) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func testTags(t *testing.T, s store.Store) {
	c := ctx(t)
	owner := mkUser(t, s, "towner", store.RolePublisher)
	report := mkContent(t, s, owner.ID, "report")
	dash := mkContent(t, s, owner.ID, "dash")

	dept := &store.Tag{Name: "Department", CreatedAt: T0}
	must(t, s.CreateTag(c, dept))
	sales := &store.Tag{Name: "Sales", ParentID: dept.ID}
	must(t, s.CreateTag(c, sales))
	emea := &store.Tag{Name: "EMEA", ParentID: sales.ID}
	must(t, s.CreateTag(c, emea))
	lang := &store.Tag{Name: "Language"}
	must(t, s.CreateTag(c, lang))
	r := &store.Tag{Name: "R", ParentID: lang.ID}
	must(t, s.CreateTag(c, r))
	// The same name under another parent is another tag.
	must(t, s.CreateTag(c, &store.Tag{Name: "Sales", ParentID: lang.ID}))
	wantErr(t, s.CreateTag(c, &store.Tag{Name: "Sales", ParentID: dept.ID}), store.ErrConflict, "sibling with the same name")
	wantErr(t, s.CreateTag(c, &store.Tag{Name: "Department"}), store.ErrConflict, "top-level tag with the same name")
	wantErr(t, s.CreateTag(c, &store.Tag{Name: "orphan", ParentID: 99999}), store.ErrConflict, "missing parent")

	got, err := s.Tag(c, dept.ID)
	must(t, err)
	if *got != (store.Tag{ID: dept.ID, Name: "Department", CreatedAt: us(T0), UpdatedAt: us(T0)}) {
		t.Fatalf("Tag = %+v", got)
	}
	for _, tc := range []struct {
		f    store.TagFilter
		want []string
	}{
		{store.TagFilter{}, []string{"Department", "Sales", "EMEA", "Language", "R", "Sales"}},
		{store.TagFilter{TopLevel: true}, []string{"Department", "Language"}},
		{store.TagFilter{ParentID: dept.ID}, []string{"Sales"}},
		{store.TagFilter{Name: "Sales"}, []string{"Sales", "Sales"}},
		{store.TagFilter{Name: "Sales", ParentID: lang.ID}, []string{"Sales"}},
	} {
		ts, err := s.ListTags(c, tc.f)
		must(t, err)
		if !slices.Equal(tagNames(ts), tc.want) {
			t.Fatalf("ListTags(%+v) = %v, want %v", tc.f, tagNames(ts), tc.want)
		}
	}

	emea.Name, emea.ParentID = "Europe", dept.ID
	must(t, s.UpdateTag(c, emea))
	got, err = s.Tag(c, emea.ID)
	must(t, err)
	if got.Name != "Europe" || got.ParentID != dept.ID {
		t.Fatalf("updated tag = %+v", got)
	}
	emea.Name = "Sales"
	wantErr(t, s.UpdateTag(c, emea), store.ErrConflict, "rename onto a sibling's name")
	emea.Name = "Europe"

	// Content's tags.
	must(t, s.AddContentTag(c, report.ID, sales.ID))
	must(t, s.AddContentTag(c, report.ID, r.ID))
	must(t, s.AddContentTag(c, dash.ID, sales.ID))
	wantErr(t, s.AddContentTag(c, report.ID, sales.ID), store.ErrConflict, "tag twice")
	wantErr(t, s.AddContentTag(c, report.ID, 99999), store.ErrConflict, "missing tag")
	ts, err := s.ContentTags(c, report.ID)
	must(t, err)
	if !slices.Equal(tagNames(ts), []string{"Sales", "R"}) {
		t.Fatalf("ContentTags = %v", tagNames(ts))
	}
	byTag := func(id int64) []int64 {
		cs, total, err := s.ListContent(c, store.ContentFilter{TagID: id})
		must(t, err)
		var ids []int64
		for _, x := range cs {
			ids = append(ids, x.ID)
		}
		eq(t, "total by tag", total, len(ids))
		return ids
	}
	if got := byTag(sales.ID); !slices.Equal(got, []int64{report.ID, dash.ID}) {
		t.Fatalf("content tagged Sales = %v", got)
	}
	must(t, s.RemoveContentTag(c, report.ID, sales.ID))
	wantErr(t, s.RemoveContentTag(c, report.ID, sales.ID), store.ErrNotFound, "untag twice")
	if got := byTag(sales.ID); !slices.Equal(got, []int64{dash.ID}) {
		t.Fatalf("content tagged Sales after untagging = %v", got)
	}

	// Deleting a tag deletes the tags below it, and them from content.
	must(t, s.DeleteTag(c, dept.ID))
	for _, id := range []int64{dept.ID, sales.ID, emea.ID} {
		_, err := s.Tag(c, id)
		wantErr(t, err, store.ErrNotFound, "tag below a deleted tag")
	}
	ts, err = s.ContentTags(c, dash.ID)
	must(t, err)
	eq(t, "dash's tags after delete", len(ts), 0)
	wantErr(t, s.DeleteTag(c, dept.ID), store.ErrNotFound, "delete twice")
	// Deleting content removes its tags, not the tags.
	must(t, s.DeleteContent(c, report.ID))
	_, err = s.Tag(c, r.ID)
	must(t, err)
	if got := byTag(r.ID); len(got) != 0 {
		t.Fatalf("deleted content still tagged: %v", got)
	}
}

func testVanities(t *testing.T, s store.Store) {
	c := ctx(t)
	owner := mkUser(t, s, "vowner", store.RolePublisher)
	a := mkContent(t, s, owner.ID, "a")
	b := mkContent(t, s, owner.ID, "b")
	d := mkContent(t, s, owner.ID, "d")

	must(t, s.SetVanity(c, &store.Vanity{ContentID: a.ID, Path: "/sales/", CreatedAt: T0}, false))
	got, err := s.Vanity(c, a.ID)
	must(t, err)
	if *got != (store.Vanity{ContentID: a.ID, Path: "/sales/", CreatedAt: us(T0)}) {
		t.Fatalf("Vanity = %+v", got)
	}
	_, err = s.Vanity(c, b.ID)
	wantErr(t, err, store.ErrNotFound, "content without a vanity")

	conflict := func(path string, force bool, other int64) {
		t.Helper()
		err := s.SetVanity(c, &store.Vanity{ContentID: b.ID, Path: path}, force)
		var ce *store.VanityConflictError
		if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || ce.Other.ContentID != other {
			t.Fatalf("SetVanity(%s, force %v) = %v; want a conflict with content %d", path, force, err, other)
		}
	}
	conflict("/sales/", false, a.ID)
	conflict("/sales/emea/", false, a.ID) // below another's path
	conflict("/sales/emea/", true, a.ID)  // force takes a path, not one below it
	must(t, s.SetVanity(c, &store.Vanity{ContentID: b.ID, Path: "/salesforce/"}, false))
	must(t, s.SetVanity(c, &store.Vanity{ContentID: d.ID, Path: "/team/x/"}, false))
	conflict("/team/", false, d.ID) // above another's path

	// A content's own path may change to one below or above it.
	must(t, s.SetVanity(c, &store.Vanity{ContentID: d.ID, Path: "/team/"}, false))
	must(t, s.SetVanity(c, &store.Vanity{ContentID: d.ID, Path: "/team/y/"}, false))

	for _, tc := range []struct {
		paths []string
		want  int64
	}{
		{[]string{"/sales/"}, a.ID},
		{[]string{"/sales/", "/sales/x/"}, a.ID},
		{[]string{"/team/", "/team/y/", "/team/y/z/"}, d.ID},
		{[]string{"/salesforce/"}, b.ID},
	} {
		v, err := s.VanityByPath(c, tc.paths)
		must(t, err)
		eq(t, "VanityByPath", v.ContentID, tc.want)
	}
	_, err = s.VanityByPath(c, []string{"/team/"})
	wantErr(t, err, store.ErrNotFound, "a path above one")
	_, err = s.VanityByPath(c, []string{"/SALES/"})
	wantErr(t, err, store.ErrNotFound, "paths are case-sensitive")

	// Force moves the path, leaving the other content without one.
	must(t, s.SetVanity(c, &store.Vanity{ContentID: b.ID, Path: "/sales/"}, true))
	_, err = s.Vanity(c, a.ID)
	wantErr(t, err, store.ErrNotFound, "vanity taken by force")
	vs, err := s.ListVanities(c)
	must(t, err)
	if len(vs) != 2 || vs[0].Path != "/sales/" || vs[0].ContentID != b.ID || vs[1].Path != "/team/y/" {
		t.Fatalf("ListVanities = %+v", vs)
	}

	must(t, s.DeleteVanity(c, b.ID))
	wantErr(t, s.DeleteVanity(c, b.ID), store.ErrNotFound, "delete twice")
	must(t, s.DeleteContent(c, d.ID))
	vs, err = s.ListVanities(c)
	must(t, err)
	eq(t, "vanities after delete", len(vs), 0)

	// Racing for a path and one below it (no unique constraint catches
	// that): exactly one wins, many times over.
	e := mkContent(t, s, owner.ID, "e")
	for round := range 10 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		base := fmt.Sprintf("/race%d/", round)
		for i, v := range []store.Vanity{{ContentID: a.ID, Path: base}, {ContentID: e.ID, Path: base + "sub/"}} {
			wg.Go(func() { errs[i] = s.SetVanity(c, &v, false) })
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), store.ErrConflict) {
			t.Fatalf("racing SetVanity: %v, %v; want one winner and a conflict", errs[0], errs[1])
		}
	}
}
