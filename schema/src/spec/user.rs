//! USER resolution: turns an image's or caller's `USER` value into the process's uid,
//! gid and supplementary gids, reading only the `/etc/passwd` and `/etc/group` contents
//! the caller passed in.
//!
//! Forms: `uid`, `uid:gid`, `uid:group`, `name`, `name:gid`, `name:group`. Ids are decimal
//! only; the seed parsed with base 0 (so `0x10` was 16) and a 10-bit size (so uids over
//! 1023 failed); here any `u32` is accepted and `0x10` is taken as a name. A bare numeric
//! `uid` keeps the seed's rule `gid = uid` and needs no `/etc/passwd`. A bare `name`
//! takes the primary gid from `/etc/passwd` and, like Docker, the gids of every
//! `/etc/group` entry that lists the name as a member.

use oci_spec::runtime::{User, UserBuilder};

use super::{EtcFiles, SpecError};

/// uid 0, gid 0: the seed's process user when the image sets no USER.
pub(super) fn root() -> User {
    User::default()
}

pub(super) fn resolve(value: &str, etc: &EtcFiles) -> Result<User, SpecError> {
    let fail = |reason: String| SpecError::User {
        value: value.to_owned(),
        reason,
    };
    let (user_part, group_part) = match value.split_once(':') {
        Some((_, group)) if group.contains(':') => {
            return Err(fail("expected USER, USER:GROUP, UID or UID:GID".to_owned()))
        }
        Some((user, group)) => (user, Some(group)),
        None => (value, None),
    };
    if user_part.is_empty() {
        return Err(fail("the user part is empty".to_owned()));
    }
    if group_part == Some("") {
        return Err(fail("the group part is empty".to_owned()));
    }

    let (uid, primary_gid, name) = match parse_id(user_part) {
        Some(id) => {
            let uid = id.map_err(|_| fail(format!("uid {user_part} is out of range")))?;
            (uid, uid, None)
        }
        None => {
            let (uid, gid) = lookup_user(user_part, etc).map_err(fail)?;
            (uid, gid, Some(user_part))
        }
    };

    let mut user = UserBuilder::default().uid(uid);
    match group_part {
        Some(group) => {
            let gid = match parse_id(group) {
                Some(id) => id.map_err(|_| fail(format!("gid {group} is out of range")))?,
                None => lookup_group(group, etc).map_err(fail)?,
            };
            user = user.gid(gid);
        }
        None => {
            user = user.gid(primary_gid);
            if let Some(name) = name {
                let extra = memberships(name, primary_gid, etc).map_err(fail)?;
                if !extra.is_empty() {
                    user = user.additional_gids(extra);
                }
            }
        }
    }
    Ok(user.build()?)
}

/// `None` when `part` is not a decimal number (so it is a name).
fn parse_id(part: &str) -> Option<Result<u32, std::num::ParseIntError>> {
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse::<u32>())
}

/// Non-comment lines of a colon-separated database, split into fields.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').collect())
}

fn field_id(fields: &[&str], index: usize, what: &str, file: &str) -> Result<u32, String> {
    let raw = fields.get(index).copied().unwrap_or("");
    raw.parse().map_err(|_| {
        format!(
            "the {file} entry for \"{}\" has an invalid {what} \"{raw}\"",
            fields[0]
        )
    })
}

fn lookup_user(name: &str, etc: &EtcFiles) -> Result<(u32, u32), String> {
    let passwd = etc
        .passwd
        .as_deref()
        .ok_or_else(|| "the image has no /etc/passwd to look the user up in".to_owned())?;
    let fields = entries(passwd)
        .find(|fields| fields[0] == name)
        .ok_or_else(|| "no such user in the image's /etc/passwd".to_owned())?;
    let uid = field_id(&fields, 2, "uid", "/etc/passwd")?;
    let gid = field_id(&fields, 3, "gid", "/etc/passwd")?;
    Ok((uid, gid))
}

fn lookup_group(name: &str, etc: &EtcFiles) -> Result<u32, String> {
    let group = etc
        .group
        .as_deref()
        .ok_or_else(|| format!("the image has no /etc/group to look group \"{name}\" up in"))?;
    let fields = entries(group)
        .find(|fields| fields[0] == name)
        .ok_or_else(|| format!("no such group \"{name}\" in the image's /etc/group"))?;
    field_id(&fields, 2, "gid", "/etc/group")
}

/// Gids of the groups listing `name` as a member, in file order, without the primary gid
/// or repeats. No `/etc/group` simply means no supplementary groups.
fn memberships(name: &str, primary_gid: u32, etc: &EtcFiles) -> Result<Vec<u32>, String> {
    let Some(group) = etc.group.as_deref() else {
        return Ok(Vec::new());
    };
    let mut gids = Vec::new();
    for fields in entries(group) {
        let listed = fields
            .get(3)
            .is_some_and(|members| members.split(',').any(|m| m.trim() == name));
        if !listed {
            continue;
        }
        let gid = field_id(&fields, 2, "gid", "/etc/group")?;
        if gid != primary_gid && !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    Ok(gids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment line
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
broken:x:notanumber:1::/:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
wheel:x:10:root,app
audio:x:29:app
app:x:1000:app
staff:x:50:
nogroup:x:65534:
badgid:x:zz:nobody
";

    fn etc() -> EtcFiles {
        EtcFiles {
            passwd: Some(PASSWD.to_owned()),
            group: Some(GROUP.to_owned()),
        }
    }

    fn ids(value: &str, etc: &EtcFiles) -> (u32, u32, Option<Vec<u32>>) {
        let user = resolve(value, etc).unwrap_or_else(|e| panic!("{value}: {e}"));
        (user.uid(), user.gid(), user.additional_gids().clone())
    }

    fn error(value: &str, etc: &EtcFiles) -> String {
        match resolve(value, etc) {
            Ok(user) => panic!("{value} resolved to {user:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn numeric_forms_follow_the_seed_and_need_no_etc_files() {
        let none = EtcFiles::default();
        assert_eq!(ids("1000", &none), (1000, 1000, None));
        assert_eq!(ids("0", &none), (0, 0, None));
        assert_eq!(ids("1000:50", &none), (1000, 50, None));
        assert_eq!(ids("4294967294:7", &none), (4294967294, 7, None));
        // Above the seed's accidental 10-bit limit.
        assert_eq!(ids("1024", &none), (1024, 1024, None));
    }

    #[test]
    fn a_bare_name_takes_primary_and_supplementary_groups() {
        assert_eq!(ids("app", &etc()), (1000, 1000, Some(vec![10, 29])));
        assert_eq!(ids("root", &etc()), (0, 0, Some(vec![10])));
        let no_group_file = EtcFiles {
            group: None,
            ..etc()
        };
        assert_eq!(ids("app", &no_group_file), (1000, 1000, None));
    }

    #[test]
    fn mixed_name_and_id_forms_resolve_each_side() {
        assert_eq!(ids("app:staff", &etc()), (1000, 50, None));
        assert_eq!(ids("app:7", &etc()), (1000, 7, None));
        assert_eq!(ids("1234:staff", &etc()), (1234, 50, None));
        assert_eq!(ids("daemon:daemon", &etc()), (1, 1, None));
    }

    #[test]
    fn unknown_names_are_errors_naming_the_value() {
        assert_eq!(
            error("nobody2", &etc()),
            "USER \"nobody2\": no such user in the image's /etc/passwd"
        );
        assert_eq!(
            error("app:nogroup2", &etc()),
            "USER \"app:nogroup2\": no such group \"nogroup2\" in the image's /etc/group"
        );
        assert_eq!(
            error("app", &EtcFiles::default()),
            "USER \"app\": the image has no /etc/passwd to look the user up in"
        );
        let no_group_file = EtcFiles {
            group: None,
            ..etc()
        };
        assert_eq!(
            error("1:staff", &no_group_file),
            "USER \"1:staff\": the image has no /etc/group to look group \"staff\" up in"
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let none = EtcFiles::default();
        assert!(error("1:2:3", &none).contains("expected USER, USER:GROUP"));
        assert!(error(":5", &none).contains("the user part is empty"));
        assert!(error("5:", &none).contains("the group part is empty"));
        assert!(error("4294967296", &none).contains("uid 4294967296 is out of range"));
        assert!(error("1:4294967296", &none).contains("gid 4294967296 is out of range"));
        // Hex is a name, not an id (the seed accepted it as 16).
        assert!(error("0x10", &etc()).contains("no such user"));
        assert!(error("+5", &etc()).contains("no such user"));
        assert!(error("broken", &etc()).contains("invalid uid \"notanumber\""));
        // A membership line with a bad gid is reported, not skipped.
        assert!(error("nobody", &etc()).contains("\"badgid\" has an invalid gid \"zz\""));
    }
}
