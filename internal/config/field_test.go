package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestFieldsAreTheJSONKeys ties the Field constants to Config: one per JSON
// key, in field order, so validation, the checks and the wizard cannot name
// a setting the file does not have.
func TestFieldsAreTheJSONKeys(t *testing.T) {
	var keys []Field
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			keys = append(keys, Field(name))
		}
	}
	if !slices.Equal(keys, Fields) {
		t.Errorf("Config's JSON keys are\n%q\nbut Fields lists\n%q", keys, Fields)
	}
}

func TestFieldFlag(t *testing.T) {
	if got := FieldACMEEABKeyID.Flag(); got != "--acme-eab-kid" {
		t.Errorf("Flag() = %q, want --acme-eab-kid", got)
	}
}
