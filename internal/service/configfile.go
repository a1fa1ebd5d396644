package service

import (
	"os"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// readConfig reads a config file as config.Load does, but without Load's
// owner check: install runs as root and reads the file of the user who
// asked for it.
func readConfig(path string) (config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Config{}, err
	}
	return config.Parse(data, path)
}
