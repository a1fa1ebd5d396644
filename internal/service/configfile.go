package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// readConfig reads a config file as config.Load does (unknown keys are
// errors), but without Load's owner check: install runs as root and reads
// the file of the user who asked for it.
func readConfig(path string) (config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Config{}, err
	}
	var c config.Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %v", path, err)
	}
	return c, nil
}

// encodeConfig is a config file's contents, as config.Save writes them.
func encodeConfig(c config.Config) ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return append(data, '\n'), nil
}
