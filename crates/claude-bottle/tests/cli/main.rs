//! Integration tests driving the real `claude-bottle` binary, compiled into
//! one test binary (one link on small machines).

mod cleanup;
mod completions;
mod cwd;
mod default_agent;
mod default_image;
mod doctor;
mod dry_run;
mod egress;
mod engine;
mod faults;
mod from_the_bottle;
mod gate;
mod gate_load;
mod gate_names;
mod gate_tunnels;
mod gvisor;
mod harness;
mod init_edit;
mod launch;
mod load;
mod manifest_errors;
mod phases;
mod podman;
mod readme;
mod refusals;
mod secrets;
mod session;
mod ssh;
mod support;
mod terminal;
mod usage;
mod warm_start;
