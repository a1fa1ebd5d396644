package service

import (
	"io"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
)

// readConfig reads a config file as config.Load does, but without Load's
// owner check: install runs as root and reads the file of the user who
// asked for it (or the service's own, in a directory the service account
// owns), so never through a symbolic link at its last step.
func readConfig(path string) (config.Config, error) {
	f, err := openNoFollow(path, path)
	if err != nil {
		return config.Config{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return config.Config{}, err
	}
	return config.Parse(data, path)
}
