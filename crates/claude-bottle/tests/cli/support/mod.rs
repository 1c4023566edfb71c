//! What the tests share: a sandboxed binary, the engine or a loud skip,
//! run labels, fixtures that a test owns on the engine, bottle instances
//! under test, and one terminal driver.

pub(crate) mod engine;
pub(crate) mod engine_relay;
pub(crate) mod fixture;
pub(crate) mod instance;
pub(crate) mod label;
pub(crate) mod own_engine;
pub(crate) mod sandbox;
pub(crate) mod ssh_host;
pub(crate) mod terminal;

pub(crate) use engine::{
    connect, engine_with, has_runsc, is_podman, runtimes, skip, with_fake_claude, with_real_claude,
};
pub(crate) use fixture::{
    BASE_IMAGE, CLAUDE_CODE_IMAGE, FAKE_CLAUDE_IMAGE, FIXTURES_IMAGE, GATE_IMAGE, SSHD_IMAGE,
    Service, TEST_LABEL, TestContainer, TestImage, TestNetwork, containers_labelled, exec,
    fixture_json, http_get, run_in_container, tool_result,
};
pub(crate) use instance::{
    Session, agent_and_gate, bottle_sandbox, containers_gone, fake_claude_bottle, instance_of,
    kill_9, label_filter, leftovers, real_claude, running_agent, value_of, wait_for_instance,
};
pub(crate) use label::run_label;
pub(crate) use own_engine::{DOCKERD_IMAGE, OwnEngine};
pub(crate) use sandbox::{BIN, Output, SIMPLE, Sandbox};
pub(crate) use ssh_host::{SshHostFixture, copy_keys, entry, files_holding, key_lines};
pub(crate) use terminal::Terminal;
