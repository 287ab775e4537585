//! The testbed crate builds and runs a local, DevStack-like OpenStack on one machine: network
//! namespaces on a private bridge, each booted with systemd-nspawn, running real OpenStack services
//! under DevStack's unit names. It also discovers the same inventory from a real DevStack.
#![warn(missing_docs)]
