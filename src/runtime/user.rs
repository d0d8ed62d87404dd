//! Resolving `user:` against the container's own /etc/passwd and /etc/group.

use super::SetupError;
use crate::unit::{IdOrName, UserSpec};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads /etc/passwd and /etc/group of the current root (after pivot_root).
pub fn resolve(spec: Option<&UserSpec>) -> Result<Credentials, SetupError> {
    // The rootfs is the image's: its files may be FIFOs or links to devices.
    let read = |path: &str| {
        crate::files::read_text(
            std::path::Path::new(path),
            crate::files::Links::Follow,
            crate::files::MAX_FILE_BYTES,
        )
        .unwrap_or_default()
    };
    let passwd = read("/etc/passwd");
    let group = read("/etc/group");
    resolve_in(spec, &passwd, &group)
}

/// (uid_t)-1.
const UNCHANGED_ID: u32 = u32::MAX;

fn resolve_in(
    spec: Option<&UserSpec>,
    passwd: &str,
    group: &str,
) -> Result<Credentials, SetupError> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let fail = |message: String| SetupError::message("user", Some("/etc/passwd"), message);
    let default = UserSpec {
        user: IdOrName::Id(0),
        group: None,
    };
    let spec = spec.unwrap_or(&default);
    let (uid, entry) = match &spec.user {
        IdOrName::Id(uid) => (*uid, users.iter().find(|u| u.uid == *uid)),
        IdOrName::Name(name) => {
            let entry = users
                .iter()
                .find(|u| &u.name == name)
                .ok_or_else(|| fail(format!("no user {name:?} in the container's /etc/passwd")))?;
            (entry.uid, Some(entry))
        }
    };
    // Like Docker: a numeric uid without a passwd entry gets gid 0.
    let gid = match &spec.group {
        Some(IdOrName::Id(gid)) => *gid,
        Some(IdOrName::Name(name)) => groups
            .iter()
            .find(|g| &g.name == name)
            .map(|g| g.gid)
            .ok_or_else(|| {
                SetupError::message(
                    "user",
                    Some("/etc/group"),
                    format!("no group {name:?} in the container's /etc/group"),
                )
            })?,
        None => entry.map_or(0, |e| e.gid),
    };
    let mut supplementary: Vec<u32> = match entry {
        Some(e) => groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == &e.name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    if spec.group.is_none() {
        supplementary.push(gid);
    }
    supplementary.sort_unstable();
    supplementary.dedup();
    // To setresuid and setgroups, -1 means "leave unchanged": an image's
    // passwd entry with that id would leave the workload root.
    if let Some(id) = [uid, gid]
        .iter()
        .chain(&supplementary)
        .find(|&&id| id == UNCHANGED_ID)
    {
        return Err(fail(format!(
            "id {id} is not a user or group (the kernel reads it as \"unchanged\")"
        )));
    }
    Ok(Credentials {
        uid,
        gid,
        groups: supplementary,
        home: entry.map_or_else(|| "/".to_string(), |e| e.home.clone()),
    })
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unchanged_id_is_refused() {
        let passwd = "evil:x:4294967295:0::/:/bin/sh\nroot:x:0:0::/root:/bin/sh\n";
        let spec = UserSpec {
            user: IdOrName::Name("evil".into()),
            group: None,
        };
        let error = resolve_in(Some(&spec), passwd, "").unwrap_err();
        assert!(
            error.message.contains("4294967295 is not a user"),
            "{error}"
        );
        let spec = UserSpec {
            user: IdOrName::Id(0),
            group: Some(IdOrName::Id(u32::MAX)),
        };
        assert!(resolve_in(Some(&spec), passwd, "").is_err());
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nwww:x:101:102:web:/var/www:/bin/false\nbroken line\n";
    const GROUP: &str = "root:x:0:\nwww:x:102:\nlog:x:4:www,other\nmisc:x:9:\n";

    fn spec(text: &str) -> UserSpec {
        crate::unit::parse_unit(
            "a",
            "f".as_ref(),
            &format!("rootfs: /r\nexec: [/x]\nuser: \"{text}\"\n"),
        )
        .unwrap()
        .user
        .unwrap()
    }

    #[test]
    fn resolves_names_ids_and_groups() {
        let creds = |text: &str| resolve_in(Some(&spec(text)), PASSWD, GROUP);
        let www = creds("www").unwrap();
        assert_eq!(
            (www.uid, www.gid, www.groups.clone(), www.home.as_str()),
            (101, 102, vec![4, 102], "/var/www")
        );
        let numeric = creds("101").unwrap();
        assert_eq!((numeric.uid, numeric.gid), (101, 102));
        let unknown_id = creds("4242").unwrap();
        assert_eq!(
            (unknown_id.uid, unknown_id.gid, unknown_id.home.as_str()),
            (4242, 0, "/")
        );
        let explicit = creds("www:misc").unwrap();
        assert_eq!((explicit.gid, explicit.groups), (9, vec![4]));
        let ids = creds("5:6").unwrap();
        assert_eq!((ids.uid, ids.gid), (5, 6));
        assert!(creds("nobody")
            .unwrap_err()
            .to_string()
            .contains("no user \"nobody\""));
        assert!(creds("www:nogroup")
            .unwrap_err()
            .to_string()
            .contains("no group"));
        let root = resolve_in(None, PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
    }
}
