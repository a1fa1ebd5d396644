package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatehouse-proxy/gatehouse/internal/config"
	"github.com/gatehouse-proxy/gatehouse/internal/privatefile"
)

// Certificate choices of the wizard. Let's Encrypt and another ACME CA are
// both config.TLSACME; the wizard keeps them apart so each keeps its
// own directory and the staging option.
const (
	certLocal       = "local"
	certLetsEncrypt = "letsencrypt"
	certACME        = "acme"
	certFiles       = "files"
)

// defaultAppURL is prefilled for "my app": authentik's HTTPS port on this
// machine.
const defaultAppURL = "https://localhost:9443"

// defaultHostname is prefilled so a newcomer without a domain can go
// straight through: browsers resolve *.localhost to this machine.
const defaultHostname = "gatehouse.localhost"

// draftFile is the unfinished setup, beside the config file.
const draftFile = "wizard-draft.json"

// A draft is everything typed in the wizard, saved on each change so that
// nothing is lost by going Back or by restarting the app mid-way. Config
// keeps every field even when the current choice does not use it, so
// switching choices back and forth loses nothing; config() builds the clean
// Config that is saved and run.
type draft struct {
	Config       config.Config `json:"config"`
	Demo         bool          `json:"demo"`          // the built-in demo app rather than Config.Upstream
	Certificate  string        `json:"certificate"`   // a cert* choice
	StagingFirst bool          `json:"staging_first"` // Let's Encrypt: rehearse with staging until production issued (Config.ACMEStagingFirst)
	ACMEURL      string        `json:"acme_url"`      // the directory of "another ACME CA"
	RunAs        string        `json:"run_as"`        // a runAs* choice: how the proxy runs once set up
	Step         int           `json:"step"`
}

// How the proxy runs once set up: the review step's choice.
const (
	runAsService = "service" // installed as the system service: it outlives the window
	runInWindow  = "window"  // inside this window, to try it out
)

// newDraft is the first-run setup: the demo app behind a local CA, ready to
// start with Next and Start alone.
func newDraft(stateDir, httpAddr, httpsAddr string) draft {
	return draft{
		Config: config.Config{
			Hostname:  defaultHostname,
			Upstream:  defaultAppURL,
			HTTPAddr:  httpAddr,
			HTTPSAddr: httpsAddr,
			StateDir:  stateDir,
		},
		Demo:         true,
		Certificate:  certLocal,
		StagingFirst: true,
		RunAs:        runAsService,
	}
}

// draftFromConfig prefills the wizard from a saved setup ("Edit setup").
func draftFromConfig(cfg config.Config) draft {
	d := draft{Config: cfg, Certificate: certLocal, StagingFirst: true, RunAs: runAsService}
	if cfg.Upstream == config.UpstreamDemo {
		d.Demo, d.Config.Upstream = true, defaultAppURL
	}
	switch cfg.TLS {
	case config.TLSFiles:
		d.Certificate = certFiles
	case config.TLSACME, "":
		d.Certificate = certLetsEncrypt
		switch cfg.ACMEDirectoryURL() {
		case config.LetsEncryptProduction:
			d.StagingFirst = cfg.ACMEStagingFirst
		case config.LetsEncryptStaging:
			d.StagingFirst = false
			d.Config.ACMEDirectory = "staging"
		default:
			d.Certificate, d.ACMEURL = certACME, cfg.ACMEDirectory
		}
	}
	return d
}

// config is the setup the draft describes, with only the fields its
// choices use.
func (d draft) config() config.Config {
	c := d.Config
	if d.Demo {
		c.Upstream = config.UpstreamDemo
		c.UpstreamFingerprint, c.UpstreamCA, c.UpstreamInsecure = "", "", false
	}
	if d.Certificate != certFiles {
		c.CertFile, c.KeyFile = "", ""
	}
	switch d.Certificate {
	case certLocal:
		c.TLS = config.TLSSelfSigned
	case certFiles:
		c.TLS = config.TLSFiles
	case certLetsEncrypt:
		c.TLS = config.TLSACME
		if c.ACMEDirectory != "staging" {
			c.ACMEDirectory = "production"
		}
		c.ACMEStagingFirst = d.StagingFirst && c.ACMEDirectory == "production"
		c.ACMECARoots, c.ACMEEABKeyID, c.ACMEEABHMAC = "", "", ""
	case certACME:
		c.TLS, c.ACMEDirectory = config.TLSACME, d.ACMEURL
	}
	if d.Certificate != certLetsEncrypt {
		c.ACMEStagingFirst = false
	}
	if c.TLS != config.TLSACME {
		c.ACMEEmail, c.ACMEDirectory, c.ACMECARoots, c.ACMEEABKeyID, c.ACMEEABHMAC = "", "", "", "", ""
	}
	return c
}

// validate checks the draft's config, adding what the engine cannot know:
// "another ACME CA" needs its directory, which would otherwise default to
// Let's Encrypt.
func (d draft) validate() config.ValidationErrors {
	errs := config.FieldErrors(d.config().Validate())
	if d.Certificate == certACME && d.ACMEURL == "" {
		errs = append(errs, &config.FieldError{Field: config.FieldACMEDirectory, Message: "enter the directory URL your CA gives, such as https://ca.example.com/acme/directory"})
	}
	return errs
}

func loadDraft(path string) (draft, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return draft{}, err
	}
	var d draft
	if err := json.Unmarshal(data, &d); err != nil {
		return draft{}, fmt.Errorf("reading the unfinished setup %s: %w", path, err)
	}
	return d, nil
}

func saveDraft(path string, d draft) error {
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := privatefile.Write(path, data); err != nil {
		return fmt.Errorf("saving the unfinished setup: %w", err)
	}
	return nil
}

// removeDraft forgets the unfinished setup once it has been saved as the
// config.
func removeDraft(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func draftPath(configPath string) string { return filepath.Join(filepath.Dir(configPath), draftFile) }
