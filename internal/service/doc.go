// Package service installs Gatehouse as a systemd service and removes it
// again: `gatehouse service install|uninstall|status|unit`, and the same
// for the desktop app, which runs the install through pkexec (PkexecArgv).
//
// The system service (the default) runs the binary copied to
// /usr/local/bin as the gatehouse user, with the config in /etc/gatehouse
// and certificates in /var/lib/gatehouse, in a sandbox that
// `systemd-analyze security` rates below 2.0 (SystemUnit). A user service
// (Options.User) runs from the user's home as that user, also without a
// login (lingering).
//
// An Installer works under a root directory and runs commands through a
// replaceable runner, so tests install into a temporary root with a fake
// systemctl, useradd and getent, and check the files and the commands.
package service
