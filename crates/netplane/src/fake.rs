//! The fake netplane: validates and renders like the real one, keeps the result in memory, and
//! reports changes as the difference between what was applied before and now — so the agent's
//! tests see the same contract (idempotent applies report nothing; removal reports deletions)
//! without root. Fault knobs: [`FakeNetplane::fail_next_applies`], [`FakeNetplane::deny_root`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{HostNetwork, Segment};
use crate::state::allocate;
use crate::{dhcp, names, router, sg, Netplane, Observed, ObservedLink, ObservedProcess, Report};

#[derive(Default)]
pub struct FakeNetplane {
    inner: Mutex<FakeState>,
    fail_next: AtomicUsize,
    not_root: AtomicBool,
}

#[derive(Default)]
struct FakeState {
    current: HostNetwork,
    inventory: BTreeMap<String, String>,
    applies: usize,
    marks: BTreeMap<String, u16>,
    zones: BTreeMap<String, u16>,
}

fn digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Everything the real netplane would make for `d`, as object name -> content digest.
pub fn inventory(
    d: &HostNetwork,
    marks: &BTreeMap<String, u16>,
    zones: &BTreeMap<String, u16>,
) -> BTreeMap<String, String> {
    let mut inv = BTreeMap::new();
    let ns = names::Namespaces {
        prefix: "nubo-".into(),
    };
    for n in &d.networks {
        inv.insert(
            format!("bridge {}", names::bridge(&n.id)),
            format!("mtu {}", n.mtu),
        );
        if let Segment::Vxlan { vni } = n.segment {
            inv.insert(
                format!("vxlan {}", names::vxlan(&n.id)),
                format!("vni {vni} mtu {}", n.mtu),
            );
            for h in &d.remote_hosts {
                for rn in h.networks.iter().filter(|rn| rn.network_id == n.id) {
                    inv.insert(
                        format!(
                            "fdb {} 00:00:00:00:00:00 {}",
                            names::vxlan(&n.id),
                            h.underlay_ip
                        ),
                        String::new(),
                    );
                    for m in &rn.macs {
                        inv.insert(
                            format!(
                                "fdb {} {} {}",
                                names::vxlan(&n.id),
                                m.to_ascii_lowercase(),
                                h.underlay_ip
                            ),
                            String::new(),
                        );
                    }
                }
            }
        }
    }
    for p in &d.ports {
        inv.insert(format!("tap {}", p.tap), names::bridge(&p.network_id));
    }
    for t in sg::tables(d, marks, zones) {
        for o in &t.objects {
            inv.insert(format!("nft {} {} {}", t.family, t.name, o.name), o.hash());
        }
    }
    if let Some(t) = router::ext_table(d) {
        inv.insert(format!("nft {} {}", t.family, t.name), digest(&t.render()));
    }
    for r in &d.routers {
        let n = ns.router(&r.id);
        inv.insert(format!("namespace {n}"), String::new());
        let md = (d.metadata.is_some() && !r.interfaces.is_empty()).then_some(9697);
        inv.insert(
            format!("{n}: nft inet nubo-router"),
            digest(&router::nat_table(r, md).render()),
        );
        for i in &r.interfaces {
            inv.insert(
                format!("{n}: {}", names::qr(&i.port_id)),
                format!("{} {:?}", i.mac, i.addresses),
            );
        }
        if let Some(g) = &r.gateway {
            inv.insert(
                format!("{n}: {}", names::qg(&g.port_id)),
                format!(
                    "{} {:?} {:?} {:?}",
                    g.mac, g.addresses, g.nexthops, r.floating_ips
                ),
            );
        }
        if !r.routes.is_empty() {
            inv.insert(format!("{n}: routes"), format!("{:?}", r.routes));
        }
        if let Some(conf) = router::radvd_conf(r, d) {
            inv.insert(format!("process radvd:{}", r.id), digest(&conf));
        }
        if md.is_some() {
            inv.insert(format!("metadata router:{}", r.id), String::new());
        }
    }
    for s in &d.dhcp_servers {
        let n = ns.dhcp(&s.network_id);
        inv.insert(format!("namespace {n}"), String::new());
        inv.insert(
            format!("{n}: {}", names::dhcp_port(&s.port_id)),
            format!("{} {:?}", s.mac, s.addresses),
        );
        let f = dhcp::files(s, d);
        let args = dhcp::args(s, d, std::path::Path::new("/fake"));
        inv.insert(
            format!("process dnsmasq:{}", s.network_id),
            digest(&format!("{}{}{}", args.join(" "), f.hosts, f.opts)),
        );
        if s.isolated_metadata && d.metadata.is_some() {
            inv.insert(format!("metadata dhcp:{}", s.network_id), String::new());
        }
    }
    if let Some(x) = &d.external {
        inv.insert(
            format!("external {}", names::bridge(&x.network_id)),
            format!("{:?}", x.addresses),
        );
    }
    inv
}

impl FakeNetplane {
    pub fn new() -> FakeNetplane {
        FakeNetplane::default()
    }

    /// The next `n` applies fail with [`Error::Injected`] and change nothing.
    pub fn fail_next_applies(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Behave as if not root: every apply fails with [`Error::NotRoot`].
    pub fn deny_root(&self, deny: bool) {
        self.not_root.store(deny, Ordering::SeqCst);
    }

    /// The last state applied successfully.
    pub fn current(&self) -> HostNetwork {
        self.inner.lock().current.clone()
    }

    /// How many applies succeeded.
    pub fn applies(&self) -> usize {
        self.inner.lock().applies
    }

    /// The objects the real netplane would have now (`bridge nbr-...`, `tap ...`, `nft ...`).
    pub fn objects(&self) -> Vec<String> {
        self.inner.lock().inventory.keys().cloned().collect()
    }

    /// Simulates someone deleting an object by hand (the next apply recreates it).
    pub fn delete_by_hand(&self, object: &str) -> bool {
        self.inner.lock().inventory.remove(object).is_some()
    }
}

#[async_trait]
impl Netplane for FakeNetplane {
    async fn apply(&self, desired: &HostNetwork) -> Result<Report> {
        if self.not_root.load(Ordering::SeqCst) {
            return Err(Error::NotRoot);
        }
        desired.validate()?;
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Injected("apply".into()));
        }
        let mut s = self.inner.lock();
        let ports: BTreeSet<String> = desired
            .ports
            .iter()
            .filter(|p| p.port_security_enabled)
            .map(|p| p.id.clone())
            .collect();
        allocate(&mut s.marks, &ports);
        let nets: BTreeSet<String> = desired.ports.iter().map(|p| p.network_id.clone()).collect();
        allocate(&mut s.zones, &nets);
        let new = inventory(desired, &s.marks, &s.zones);
        let mut report = Report::default();
        for (k, v) in &new {
            match s.inventory.get(k) {
                None => report.changes.push(format!("create {k}")),
                Some(old) if old != v => report.changes.push(format!("update {k}")),
                _ => {}
            }
        }
        for k in s.inventory.keys() {
            if !new.contains_key(k) {
                report.changes.push(format!("delete {k}"));
            }
        }
        report.ports_ready = desired.ports.iter().map(|p| p.id.clone()).collect();
        s.inventory = new;
        s.current = desired.clone();
        s.applies += 1;
        Ok(report)
    }

    async fn observe(&self) -> Result<Observed> {
        if self.not_root.load(Ordering::SeqCst) {
            return Err(Error::NotRoot);
        }
        let s = self.inner.lock();
        let mut o = Observed::default();
        for k in s.inventory.keys() {
            let (kind, rest) = k.split_once(' ').unwrap_or((k.as_str(), ""));
            match kind {
                "namespace" => o.namespaces.push(rest.to_string()),
                "bridge" | "vxlan" | "tap" => o.links.push(ObservedLink {
                    name: rest.to_string(),
                    kind: if kind == "tap" {
                        "tun".into()
                    } else {
                        kind.to_string()
                    },
                    master: None,
                    up: true,
                }),
                "fdb" => o.fdb.push(rest.to_string()),
                "process" => o.processes.push(ObservedProcess {
                    key: rest.to_string(),
                    pid: 0,
                    alive: true,
                }),
                "metadata" => o.metadata_listeners.push(rest.to_string()),
                "nft" => {
                    let t: Vec<&str> = rest.splitn(3, ' ').collect();
                    let table = format!("{} {}", t[0], t.get(1).unwrap_or(&""));
                    if !o.nft_tables.contains(&table) {
                        o.nft_tables.push(table);
                    }
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn desired() -> HostNetwork {
        HostNetwork {
            networks: vec![Network {
                id: "n1".into(),
                segment: Segment::Vxlan { vni: 7 },
                mtu: 1450,
                subnets: vec![],
            }],
            ports: vec![Port {
                id: "p1".into(),
                network_id: "n1".into(),
                mac: "02:00:00:00:00:01".into(),
                fixed_ips: vec!["10.0.0.5".parse().unwrap()],
                tap: "tapp1".into(),
                port_security_enabled: true,
                security_groups: vec![],
                allowed_address_pairs: vec![],
                admin_state_up: true,
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn fake_keeps_the_contract() {
        let f = FakeNetplane::new();
        let d = desired();
        let r = f.apply(&d).await.unwrap();
        assert!(
            r.changes.contains(&"create bridge nbr-n1".to_string()),
            "{:?}",
            r.changes
        );
        assert!(
            r.changes.contains(&"create tap tapp1".to_string()),
            "{:?}",
            r.changes
        );
        assert_eq!(r.ports_ready, vec!["p1"]);
        assert!(f.apply(&d).await.unwrap().changes.is_empty(), "idempotent");
        assert!(f.delete_by_hand("bridge nbr-n1"));
        assert_eq!(
            f.apply(&d).await.unwrap().changes,
            vec!["create bridge nbr-n1"],
            "heals"
        );
        let o = f.observe().await.unwrap();
        assert!(o.links.iter().any(|l| l.name == "tapp1"));
        assert!(
            o.nft_tables.contains(&"bridge nubo-sg".to_string()),
            "{o:?}"
        );

        f.fail_next_applies(1);
        assert!(matches!(f.apply(&d).await, Err(Error::Injected(_))));
        let mut bad = d.clone();
        bad.ports[0].network_id = "nope".into();
        assert!(matches!(f.apply(&bad).await, Err(Error::Invalid(_))));
        f.deny_root(true);
        assert_eq!(f.apply(&d).await.unwrap_err(), Error::NotRoot);
        f.deny_root(false);

        let r = f.apply(&HostNetwork::default()).await.unwrap();
        assert!(
            r.changes.iter().all(|c| c.starts_with("delete ")),
            "{:?}",
            r.changes
        );
        assert!(f.observe().await.unwrap().is_empty());
        assert_eq!(f.applies(), 4);
    }
}
