package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// TestEveryFieldHasAFlagThatSetsIt: each config key can be given on the
// command line as --key (with - for _), and that flag sets that key.
func TestEveryFieldHasAFlagThatSetsIt(t *testing.T) {
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		sf := typ.Field(i)
		key, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if key == "" || key == "-" {
			continue
		}
		f := config.Field(key)
		if !slices.Contains(config.Fields, f) {
			t.Errorf("the JSON key %q has no Field constant", key)
			continue
		}
		value := map[string]string{"sites": "app.example.com=http://10.0.0.5"}[key]
		if value == "" {
			value = map[reflect.Kind]string{reflect.String: "x", reflect.Bool: "true", reflect.Int: "5", reflect.Int64: "5s", reflect.Slice: "10.0.0.0/8", reflect.Pointer: "https://authentik.lan:9443"}[sf.Type.Kind()]
		}
		if value == "" {
			t.Fatalf("no test value for %s's kind %s", key, sf.Type.Kind())
		}
		cl := newCommandLine("serve", io.Discard)
		if cl.fs.Lookup(flagName(f)) == nil {
			t.Errorf("%s has no flag %s", key, f.Flag())
			continue
		}
		empty := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(empty, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := cl.parse([]string{"--config", empty, f.Flag() + "=" + value})
		if err != nil {
			t.Fatalf("%s %s: %v", f.Flag(), value, err)
		}
		if changed := changedKeys(t, cfg); len(changed) != 1 || changed[0] != key {
			t.Errorf("%s=%s set %q, want %s alone", f.Flag(), value, changed, key)
		}
	}
}

// changedKeys lists the JSON keys where cfg differs from the zero Config.
func changedKeys(t *testing.T, cfg config.Config) []string {
	t.Helper()
	var zero, got map[string]any
	for v, into := range map[*config.Config]*map[string]any{{}: &zero, &cfg: &got} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(data, into)
	}
	var out []string
	for k, v := range got {
		if !reflect.DeepEqual(zero[k], v) {
			out = append(out, k)
		}
	}
	return out
}

// TestForwardAuthFlagKeepsTheFilesTrust: --forward-auth replaces the
// outpost's URL and keeps how the config file trusts its certificate.
func TestForwardAuthFlagKeepsTheFilesTrust(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(`{"forward_auth": {"url": "https://old.lan:9443", "fingerprint": "ab"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := newCommandLine("serve", io.Discard).parse([]string{"--config", path, "--forward-auth", "https://authentik.lan:9443"})
	if err != nil {
		t.Fatal(err)
	}
	if fa := cfg.ForwardAuth; fa == nil || fa.URL != "https://authentik.lan:9443" || fa.Fingerprint != "ab" {
		t.Errorf("forward_auth = %+v, want the flag's URL with the file's fingerprint", fa)
	}
}

// TestSiteFlagsSetTheFirstSite: --hostname and --upstream set the single
// site, or the first of a config file that lists its sites alone; --sites
// adds sites.
func TestSiteFlagsSetTheFirstSite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	body := `{"sites": [{"hostname": "a.example.com", "upstream": "http://10.0.0.5"}, {"hostname": "b.example.com", "upstream": "http://10.0.0.6"}]}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := newCommandLine("serve", io.Discard).parse([]string{"--config", path, "--upstream", "http://10.0.0.9", "--sites", "c.example.com=http://10.0.0.7, d.example.com = http://10.0.0.8"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range cfg.AllSites() {
		got = append(got, s.Hostname+"="+s.Upstream)
	}
	want := []string{"a.example.com=http://10.0.0.9", "b.example.com=http://10.0.0.6", "c.example.com=http://10.0.0.7", "d.example.com=http://10.0.0.8"}
	if !slices.Equal(got, want) || cfg.Hostname != "" {
		t.Errorf("sites %q (top-level hostname %q), want %q", got, cfg.Hostname, want)
	}
	legacy := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(legacy, []byte(`{"hostname": "sso.example.com", "upstream": "http://10.0.0.5"}`), 0o600)
	cfg, err = newCommandLine("serve", io.Discard).parse([]string{"--config", legacy, "--upstream", "http://10.0.0.9"})
	if err != nil || cfg.Hostname != "sso.example.com" || cfg.Upstream != "http://10.0.0.9" || len(cfg.Sites) != 0 {
		t.Errorf("legacy config with --upstream: %+v, %v", cfg, err)
	}
}

func TestDescribeConfigErrorNamesTheSite(t *testing.T) {
	err := config.Config{TLS: config.TLSSelfSigned, StateDir: t.TempDir(), Sites: []config.Site{{Hostname: "a.example.com", Upstream: "nope"}}}.Validate()
	if got := describeConfigError(err); !strings.HasPrefix(got, "sites[0].upstream: ") {
		t.Errorf("describeConfigError = %q", got)
	}
}
