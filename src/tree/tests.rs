//! The format itself: what parses, what is refused and where, and that
//! the canonical dump reads back the same.

use std::path::Path;

use super::*;

const HEAD: &str = "format: s6-reconcile-tree\nversion: 1\nentries:\n";

fn parse_str(body: &str) -> Result<Description, ParseError> {
    parse(&format!("{HEAD}{body}"), Path::new("t.yaml"))
}

/// (line, column, message) of the error for `body` after the header.
fn error(body: &str) -> (usize, usize, String) {
    let e = parse_str(body).expect_err(body);
    (e.line, e.column, e.message)
}

#[test]
fn a_description_reads_back_from_its_dump() {
    let body = r#"
- {path: etc, type: dir}
- {path: etc/shadow, type: file, mode: "0600", links: 2, content: "root:*:19000::::::\n"}
- {path: etc/quoted, type: file, mode: "4755", uid: 7, gid: 8, content: "tab\there \"q\" back\\slash\r\u0001 é\u2028end"}
- {path: etc/bin, type: file, base64: "//4A"}
- {path: etc/big, type: file, size: 70000, sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
- {path: srv, type: dir, mode: "0700", uid: 10000, gid: 10000}
- {path: srv/event, type: dir, mode: "3730", uid: 10000, gid: 10000}
- {path: srv/supervise, type: dir, mode: "0700"}
- {path: srv/supervise/control, type: fifo, mode: "0660", uid: 10000, gid: 10000}
- {path: srv/supervise/lock, type: file}
- {path: srv/s, type: socket, mode: "0777"}
- {path: srv/evil, type: symlink, target: /etc/shadow, uid: 10000, gid: 10000}
- {path: srv/also-shadow, type: hardlink, target: etc/shadow}
- {path: srv/mnt, type: dir, mount: true}
- {path: "run:s6-rc-init:abc", type: dir}
"#;
    let d = parse_str(body).unwrap();
    let text = dump(&d);
    assert_eq!(parse(&text, Path::new("dump")).unwrap(), d);
    assert_eq!(dump(&parse(&text, Path::new("dump")).unwrap()), text);
    assert!(text.starts_with(HEAD), "{text}");
    assert!(text.contains(
        "- {path: \"srv/supervise/control\", type: fifo, mode: \"0660\", uid: 10000, gid: 10000}\n"
    ));
    assert!(text.contains("- {path: \"srv/supervise/lock\", type: file}\n"));
    assert!(
        text.contains("- {path: \"srv/also-shadow\", type: hardlink, target: \"etc/shadow\"}\n")
    );
    assert!(text.contains(
        "- {path: \"etc/bin\", type: file, mode: \"0644\", uid: 0, gid: 0, base64: \"//4A\"}\n"
    ));
    assert!(text.contains("\"srv/event\", type: dir, mode: \"3730\""));
    // Canonical order: by path, component by component.
    let paths: Vec<&str> = d.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths[0], "etc");
    assert!(
        paths
            .windows(2)
            .all(|w| w[0].split('/').lt(w[1].split('/')))
    );
    assert_eq!(
        dump(&Description::default()),
        format!("{}entries: []\n", &HEAD[..HEAD.len() - 9])
    );
}

#[test]
fn defaults_are_root_and_usual_modes() {
    let d = parse_str("- {path: a, type: dir}\n- {path: a/f, type: file}\n").unwrap();
    let p = |m| Perms {
        uid: 0,
        gid: 0,
        mode: m,
    };
    assert_eq!(
        d.entries[0].node,
        Node::Dir {
            perms: p(0o755),
            mount: false
        }
    );
    assert_eq!(
        d.entries[1].node,
        Node::File {
            perms: p(0o644),
            content: Content::Bytes(vec![]),
            links: None
        }
    );
}

#[test]
fn bad_entries_are_refused_at_their_line() {
    let ok = "- {path: a, type: dir}\n- {path: a/f, type: file}\n";
    let cases: &[(&str, &str)] = &[
        ("- {path: /etc, type: dir}\n", "absolute path"),
        ("- {path: a/../b, type: dir}\n", "escapes the root (`..`)"),
        ("- {path: .., type: dir}\n", "escapes the root"),
        ("- {path: a, type: dir}\n", "duplicate entry"),
        (
            "- {path: a/f/g, type: file}\n",
            "entry under a non-directory: a/f is a file",
        ),
        ("- {path: b/c, type: file}\n", "parent b is not described"),
        ("- {path: x, type: sock}\n", "unknown type \"sock\""),
        ("- {path: x, type: dir, mode: \"10000\"}\n", "is over 07777"),
        (
            "- {path: x, type: dir, mode: \"0o17777\"}\n",
            "is over 07777",
        ),
        ("- {path: x, type: dir, mode: 755}\n", "quoted octal string"),
        (
            "- {path: x, type: dir, mode: \"75x\"}\n",
            "not an octal number",
        ),
        ("- {path: x, type: symlink}\n", "needs a non-empty `target`"),
        (
            "- {path: x, type: fifo, content: y}\n",
            "`content` does not apply to type fifo",
        ),
        (
            "- {path: x, type: file, colour: red}\n",
            "unknown field `colour`",
        ),
        (
            "- {path: x, type: hardlink, target: a}\n",
            "a is a dir, not a regular file",
        ),
        (
            "- {path: x, type: hardlink, target: a/f}\n",
            "a/f needs `links:`",
        ),
        (
            "- {path: x, type: file, links: 1}\n",
            "only when more than 1",
        ),
        (
            "- {path: a/supervise, type: dir}\n- {path: a/supervise/status, type: file, mode: \"0644\"}\n",
            "described by type only",
        ),
    ];
    for (bad, want) in cases {
        let body = format!("{ok}{bad}");
        let (line, column, message) = error(&body);
        // The bad entry is the last line: header (3) + 2 good + its own.
        let last = 3 + body.lines().count();
        assert_eq!(line, last, "{bad}: {message}");
        assert!(column >= 3, "{bad}: column {column}");
        assert!(message.contains(want), "{bad}: {message}");
    }
}

#[test]
fn broken_yaml_and_headers_are_refused_with_a_position() {
    let e = parse(
        "format: s6-reconcile-tree\nversion: 1\nentries:\n- {path: a, type: dir\n",
        Path::new("t.yaml"),
    )
    .unwrap_err();
    assert_eq!(e.file, Path::new("t.yaml"));
    assert!(e.line >= 4, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("t.yaml:{}:{}: ", e.line, e.column)),
        "{e}"
    );

    let e = parse(
        "format: s6-reconcile-tree\nversion: 2\nentries: []\n",
        Path::new("t.yaml"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.yaml:2:1: unknown version 2 (this reconcile reads version 1)"
    );
    let e = parse(
        "format: other\nversion: 1\nentries: []\n",
        Path::new("t.yaml"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.yaml:1:1: format: other: not a tree description (want s6-reconcile-tree)"
    );
    let e = parse("- {path: a, type: dir}\n", Path::new("t.yaml")).unwrap_err();
    assert!(e.message.contains("invalid type: sequence"), "{e}");
    let e = parse(
        "format: s6-reconcile-tree\nversion: 1\n",
        Path::new("t.yaml"),
    )
    .unwrap_err();
    assert!(e.message.contains("missing `entries:`"), "{e}");
    let e = parse(
        "format: s6-reconcile-tree\nversion: 1\nentries: []\nextra: 1\n",
        Path::new("t.yaml"),
    )
    .unwrap_err();
    assert!(e.message.contains("unknown key `extra`"), "{e}");
}

#[test]
fn runtime_files_are_s6_supervise_names_in_supervise_only() {
    assert!(is_runtime_path("run/s/app/supervise/status"));
    assert!(is_runtime_path("x/log/supervise/death_tally.new"));
    assert!(!is_runtime_path("run/service/.s6-svscan/lock"));
    assert!(!is_runtime_path("supervise"));
    assert!(!is_runtime_path("a/supervise/control"));
}

#[test]
fn sha256_matches_known_vectors() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
