//! The pure planner on hand-built observations: no disk, no root.

use std::path::Path;

use super::change::slot_entries;
use super::*;
use crate::desired::accounts::Account;
use crate::desired::config::Config;
use crate::desired::slot::{self, SlotEntry};
use crate::desired::state::Action;
use crate::fs::{Kind, Meta};
use crate::observe::{
    BaseObs, Content, Node, Observed, ProfileObs, ProfileSource, ProfilesObs, ScandirObs, SlotObs,
    StateObs,
};
use crate::{s6::layout, s6::names};

const USER: Owner = (10000, 10000);

fn desired() -> Desired {
    let account = Account {
        uid: USER.0,
        gid: USER.1,
        user_name: "hermes".into(),
        groups: Vec::new(),
    };
    Desired::new(Config::default(), account)
}

fn meta(kind: Kind, owner: Owner, mode: u32) -> Meta {
    Meta {
        kind,
        dev: 1,
        ino: 7,
        uid: owner.0,
        gid: owner.1,
        mode,
        nlink: 1,
        size: 0,
    }
}

fn node(rel: &str, kind: Kind, owner: Owner, mode: u32) -> Node {
    Node {
        path: Path::new("/run/service").join(rel),
        rel: rel.into(),
        meta: meta(kind, owner, mode),
    }
}

/// A slot `top` with the entries `below` (paths relative to it).
fn slot_obs(top: Node, below: &[(&str, Meta, Content)]) -> SlotObs {
    let mut obs = SlotObs {
        node: top,
        below: Default::default(),
        unobserved: Vec::new(),
    };
    for (rel, m, c) in below {
        obs.below.insert(rel, *m, c.clone());
    }
    obs
}

/// The slot of `profile` exactly as the planner wants it (started).
fn converged_slot(d: &Desired, profile: &str) -> (String, SlotObs) {
    let cfg = &d.config.profiles;
    let home = cfg.home.0.display().to_string();
    let files = slot::render(profile, false, "hermes", &home, &cfg.templates);
    let (owner, entries) = slot_entries(slot::entries(files, false), d.policy(), USER.0, USER.1);
    let name = names::slot_name(&cfg.slot_prefix, profile);
    let top = node(&name, Kind::Dir, owner, layout::MODE_SLOT_DIR);
    let below: Vec<_> = entries
        .iter()
        .map(|(e, o)| {
            let (m, c) = match e {
                SlotEntry::Dir { mode, .. } => (meta(Kind::Dir, *o, *mode), Content::NotRead),
                SlotEntry::Fifo { mode, .. } => (meta(Kind::Fifo, *o, *mode), Content::NotRead),
                SlotEntry::File { mode, content, .. } => {
                    let mut m = meta(Kind::File, *o, *mode);
                    m.size = content.len() as u64;
                    (m, Content::Bytes(content.as_bytes().to_vec()))
                }
            };
            (e.rel(), m, c)
        })
        .collect();
    (name, slot_obs(top, &below))
}

fn scandir_with(entries: Vec<(String, SlotObs)>) -> ScandirObs {
    ScandirObs {
        base: node("", Kind::Dir, USER, 0o755),
        svscan: None,
        svscan_files: Vec::new(),
        entries: entries.into_iter().map(|(_, s)| s).collect(),
        staging: Vec::new(),
        bad_names: Vec::new(),
        unlisted: false,
    }
}

/// An observation of the profiles phase: the profile `good` (state
/// running) and the scandir `s`.
fn profiles_obs(s: ScandirObs) -> Observed {
    let mut p = ProfileObs::new("good", ProfileSource::Directory, None);
    p.dir = Some(node("../../opt/data/profiles/good", Kind::Dir, USER, 0o755));
    p.state = StateObs::Bytes(br#"{"desired_state": "running"}"#.to_vec());
    Observed {
        phases: vec![Phase::Profiles],
        scandir: Some(BaseObs::Present(s)),
        profiles: Some(ProfilesObs {
            app: crate::observe::application::AppObs::default(),
            home: BaseObs::Present(node("", Kind::Dir, USER, 0o755)),
            profiles: vec![p],
            not_profiles: Vec::new(),
            bad_names: Vec::new(),
        }),
        ..Observed::default()
    }
}

fn verbs(p: &Plan) -> Vec<(String, &'static str)> {
    p.changes
        .iter()
        .map(|c| (c.path.display().to_string(), c.op.verb()))
        .collect()
}

#[test]
fn a_converged_slot_plans_nothing() {
    let d = desired();
    let slot = converged_slot(&d, "good");
    let p = plan(&d, &profiles_obs(scandir_with(vec![slot])));
    assert_eq!(verbs(&p), vec![]);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.slots[0].action, Action::Started);
}

#[test]
fn one_byte_of_difference_replaces_the_slot() {
    let d = desired();
    let (name, mut slot) = converged_slot(&d, "good");
    let run = slot.below.find(Path::new("run")).unwrap();
    let Content::Bytes(mut b) = slot.below.content(run).clone() else {
        panic!("run was read")
    };
    b[0] ^= 1;
    slot.below.set_content(run, Content::Bytes(b));
    let p = plan(&d, &profiles_obs(scandir_with(vec![(name, slot)])));
    assert_eq!(
        verbs(&p),
        vec![("/run/service/gateway-good".to_string(), "replace")]
    );
}

#[test]
fn a_file_that_could_not_be_read_leaves_the_slot_and_is_a_failure() {
    let d = desired();
    let (name, mut slot) = converged_slot(&d, "good");
    let run = slot.below.find(Path::new("run")).unwrap();
    let error = Content::Unreadable(Box::new("Input/output error".into()));
    slot.below.set_content(run, error);
    let p = plan(&d, &profiles_obs(scandir_with(vec![(name, slot)])));
    assert_eq!(verbs(&p), vec![], "the live slot is left as it is");
    assert_eq!(
        p.errors,
        vec![Failure {
            op: "read".into(),
            path: "/run/service/gateway-good/run".into(),
            error: "Input/output error".into(),
        }]
    );
    assert_eq!(p.slots[0].action, Action::Skipped);
}

#[test]
fn runtime_files_and_clients_fifos_are_not_differences() {
    let d = desired();
    let (name, mut slot) = converged_slot(&d, "good");
    let root_owned = (0, 0);
    let status = meta(Kind::File, root_owned, 0o644);
    slot.below
        .insert("supervise/status", status, Content::NotRead);
    let fifo = meta(Kind::Fifo, root_owned, 0o622);
    slot.below.insert("event/ftrigr1", fifo, Content::NotRead);
    let p = plan(&d, &profiles_obs(scandir_with(vec![(name, slot)])));
    assert_eq!(verbs(&p), vec![]);
}

#[test]
fn a_missing_down_is_created_in_place() {
    let d = desired();
    let mut obs = profiles_obs(scandir_with(vec![converged_slot(&d, "good")]));
    // The state now says stopped: the same slot, registered down.
    let profiles = obs.profiles.as_mut().unwrap();
    profiles.profiles[0].state = StateObs::Bytes(br#"{"desired_state": "stopped"}"#.to_vec());
    let p = plan(&d, &obs);
    assert_eq!(
        verbs(&p),
        vec![("/run/service/gateway-good/down".to_string(), "create")]
    );
}

#[test]
fn the_scandir_phase_hands_a_root_slot_to_the_user_but_not_runtime_files() {
    let d = desired();
    let root = (0, 0);
    let slot = slot_obs(
        node("svc", Kind::Dir, root, 0o755),
        &[
            ("run", meta(Kind::File, root, 0o755), Content::NotRead),
            ("supervise", meta(Kind::Dir, root, 0o700), Content::NotRead),
            (
                "supervise/control",
                meta(Kind::Fifo, root, 0o600),
                Content::NotRead,
            ),
            (
                "supervise/status",
                meta(Kind::File, root, 0o644),
                Content::NotRead,
            ),
        ],
    );
    let obs = Observed {
        phases: vec![Phase::Scandir],
        scandir: Some(BaseObs::Present(scandir_with(vec![("svc".into(), slot)]))),
        ..Observed::default()
    };
    let p = plan(&d, &obs);
    let paths: Vec<String> = p
        .changes
        .iter()
        .map(|c| c.path.display().to_string())
        .collect();
    for want in ["svc", "svc/run", "svc/supervise", "svc/supervise/control"] {
        assert!(
            paths.contains(&format!("/run/service/{want}")),
            "{want} in {paths:?}"
        );
    }
    assert!(!paths.iter().any(|p| p.ends_with("status")), "{paths:?}");
}

#[test]
fn names_that_cannot_be_used_are_reported_once_by_the_phases_together() {
    let d = desired();
    let mut s = scandir_with(vec![]);
    s.bad_names.push(Skipped {
        path: "/run/service/x\\xff".into(),
        reason: "name is not valid UTF-8; left alone".into(),
    });
    let mut obs = profiles_obs(s);
    obs.phases = vec![Phase::Scandir, Phase::Profiles];
    let p = plan(&d, &obs);
    let n = p
        .skipped
        .iter()
        .filter(|s| s.path.ends_with("x\\xff"))
        .count();
    assert_eq!(n, 1, "{:?}", p.skipped);
}
