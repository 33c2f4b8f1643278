//! What `/readyz` answers. A replica is ready while it serves and either stands by for the
//! leader lease (ready to take over; `ferry_leader` says which replica leads) or leads with
//! every controller running. It is not ready once a controller has stopped on its own or
//! while it shuts down: Kubernetes then takes it out of the Service and the PodDisruptionBudget
//! counts it as down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ControllerState {
    Running,
    Stopped,
}

#[derive(Debug, Default)]
struct State {
    leading: bool,
    shutting_down: bool,
    controllers: BTreeMap<&'static str, ControllerState>,
}

/// The replica's readiness; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Health {
    state: Arc<Mutex<State>>,
}

/// The answer of `/readyz`: whether ready, and one line per check (`[+]` passed, `[-]`
/// failed), the way kube-apiserver's `/readyz?verbose` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub report: String,
}

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of a flag.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// This replica holds the lease (or leader election is off) and starts its controllers.
    pub fn leading(&self) {
        self.with(|s| s.leading = true);
    }

    pub fn controller_running(&self, controller: &'static str) {
        self.with(|s| s.controllers.insert(controller, ControllerState::Running));
    }

    pub fn controller_stopped(&self, controller: &'static str) {
        self.with(|s| s.controllers.insert(controller, ControllerState::Stopped));
    }

    pub fn shutting_down(&self) {
        self.with(|s| s.shutting_down = true);
    }

    pub fn readiness(&self) -> Readiness {
        self.with(|s| {
            let mut report = String::new();
            let mut ready = true;
            let mut check = |ok: bool, line: &str| {
                ready &= ok;
                let _ = writeln!(report, "[{}]{line}", if ok { '+' } else { '-' });
            };
            check(!s.shutting_down, "shutdown: not shutting down");
            if !s.leading {
                check(true, "leader: standing by for the leader lease");
            } else {
                check(true, "leader: holding the leader lease");
                check(!s.controllers.is_empty(), "controllers: started");
                for (name, state) in &s.controllers {
                    let running = *state == ControllerState::Running;
                    let word = if running { "running" } else { "stopped" };
                    check(running, &format!("controller {name}: {word}"));
                }
            }
            Readiness { ready, report }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standby_and_running_leader_are_ready_a_stopped_controller_is_not() {
        let health = Health::default();
        let standby = health.readiness();
        assert!(standby.ready && standby.report.contains("standing by"), "{standby:?}");
        health.leading();
        assert!(!health.readiness().ready, "leading before any controller runs");
        health.controller_running("job");
        health.controller_running("source");
        let leading = health.readiness();
        assert!(leading.ready, "{leading:?}");
        assert!(leading.report.contains("[+]controller job: running"), "{leading:?}");
        health.controller_stopped("source");
        let broken = health.readiness();
        assert!(!broken.ready, "{broken:?}");
        assert!(broken.report.contains("[-]controller source: stopped"), "{broken:?}");
    }

    #[test]
    fn shutting_down_is_not_ready() {
        let health = Health::default();
        health.shutting_down();
        let r = health.readiness();
        assert!(!r.ready && r.report.contains("[-]shutdown"), "{r:?}");
    }
}
