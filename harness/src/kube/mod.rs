//! A real Kubernetes control plane for tests, and a node agent that runs its Pods as local
//! processes.
//!
//! [`ControlPlane`] starts etcd, kube-apiserver and kube-controller-manager with a throwaway
//! PKI and RBAC on; [`NodeAgent`] stands in for the scheduler and the kubelet of one node;
//! [`install`] installs Ferry on them with its Helm chart. The Kubernetes binaries come from
//! `dev/build-go-tools.sh` (see [`KUBE_VERSION`]).

pub mod certs;
pub mod control_plane;
pub mod install;
pub mod node_agent;

pub use crate::tidb::go_tool;
pub use certs::{ADMIN_USER, Pki};
pub use control_plane::{
    ControlPlane, ControlPlaneOptions, KUBE_VERSION, SERVICE_CIDR, StartTimes, install_crds,
};
pub use install::{LocalBinaries, OPERATOR_IMAGE, OPERATOR_NAMESPACE, WORKER_BINARY};
pub use node_agent::{DEFAULT_NODE_NAME, NodeAgent, NodeAgentOptions};

#[cfg(test)]
mod tests {
    #[test]
    fn version_matches_the_build_script() {
        let script = include_str!("../../../dev/build-go-tools.sh");
        assert!(
            script.contains(&format!("KUBE_VERSION=\"{}\"", super::KUBE_VERSION)),
            "dev/build-go-tools.sh builds another Kubernetes version than the harness runs"
        );
    }
}
