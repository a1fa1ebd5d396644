package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Fuzz targets for what a user controls. `make fuzz` runs each briefly;
// seeds live in testdata/fuzz/<FuzzName>/ beside the f.Add ones.

// configFields are the JSON keys of Config, the only fields a FieldError
// may name.
var configFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}()

// FuzzConfig decodes a config file and validates it: neither may panic,
// an accepted file is one JSON document that survives a save and reload
// unchanged, and every validation error names a real field.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"hostname": "sso.example.com", "upstream": "https://authentik.lan:9443", "upstream_insecure": true}`))
	f.Add([]byte(`{"hostname": "sso.example.com", "upstream": "http://10.0.0.5:9000", "tls": "self-signed", "trusted_proxies": ["10.0.0.0/8", "::1"], "upstream_timeout": "45s"}`))
	f.Add([]byte(`{"hostname": "SSO.Example.COM.", "upstream": "https://[::1]:9443/", "https_addr": ":8443", "http_addr": "off", "public_https_port": 443}`))
	f.Add([]byte(`{"hostname": "sso", "tls": "acme", "acme_email": "a@b.c", "acme_eab_kid": "k", "acme_eab_hmac": "aGVsbG8"}`))
	f.Add([]byte(`{"sites": [{"hostname": "a.example.com", "upstream": "http://10.0.0.5"}, {"hostname": "A.example.com.", "upstream": "x", "forward_auth": {"site": "b"}}]}`))
	f.Add([]byte(`{"upstream_keepalive": -1, "upstream_idle_timeout": "-5s", "health_path": "health"}`))
	f.Add([]byte(`{"hostname": "app.example.com", "upstream": "http://app.lan:8080", "forward_auth": {"url": "https://authentik.lan:9443", "insecure": true, "site": "x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted a file that is not one JSON document: %q", data)
		}
		saved, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted config does not encode: %v", err)
		}
		reloaded, err := Parse(saved, "saved.json")
		if err != nil {
			t.Fatalf("a saved config does not load: %v\n%s", err, saved)
		}
		if !reflect.DeepEqual(withoutEmptyLists(c), withoutEmptyLists(reloaded)) {
			t.Fatalf("save and reload changed the config:\n%+v\n%+v", c, reloaded)
		}
		// Files the config names are read by Validate and checked by their
		// own tests; a fuzzed path could name a device that never ends.
		c.UpstreamCA, c.ACMECARoots, c.CertFile, c.KeyFile = "", "", "", ""
		if c.ForwardAuth != nil {
			fa := *c.ForwardAuth
			fa.CA = ""
			c.ForwardAuth = &fa
		}
		c.StateDir = "/nonexistent/state"
		err = c.Validate()
		if err == nil {
			return
		}
		fields := FieldErrors(err)
		if len(fields) == 0 {
			t.Fatalf("Validate returned %T, not field errors: %v", err, err)
		}
		for _, fe := range fields {
			field := fe.Field
			if _, key, ok := field.InSite(); ok {
				field = key
				if field == FieldForwardAuth {
					field = FieldSites
				}
			}
			if !configFields[string(field)] || fe.Message == "" {
				t.Fatalf("error for unknown field %q or without a message: %v", fe.Field, fe)
			}
		}
	})
}

// withoutEmptyLists treats an empty list as absent, as omitempty writes it.
func withoutEmptyLists(c Config) Config {
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = nil
	}
	if len(c.Sites) == 0 {
		c.Sites = nil
	}
	return c
}
