//! Who a cron line runs as: the users and groups of `/etc/passwd` and `/etc/group`, read under
//! the root as the tables are, as cron finds them with the files backend (a user only a
//! directory service knows is not found).

use super::files::Root;
use crate::pidfile::Reader;
use std::path::Path;

/// The user named `name`, with their groups.
pub fn named(root: &Root, name: &str) -> Option<Reader> {
    find(root, |n, _| n == name)
}

/// The user whose uid is `uid`, with their groups.
pub fn with_uid(root: &Root, uid: u32) -> Option<Reader> {
    find(root, |_, u| u == uid)
}

fn find(root: &Root, is: impl Fn(&str, u32) -> bool) -> Option<Reader> {
    let passwd = root.read(Path::new("/etc/passwd")).ok()?;
    let (name, uid, gid) = passwd.text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        is(name, uid).then_some((name, uid, gid))
    })?;
    Some(Reader {
        uid,
        gid,
        groups: groups(root, name, gid),
    })
}

/// `gid` and every group whose member list names `name`, as `initgroups` finds them.
fn groups(root: &Root, name: &str, gid: u32) -> Vec<u32> {
    let mut groups = vec![gid];
    let Ok(file) = root.read(Path::new("/etc/group")) else {
        return groups;
    };
    for line in file.text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [_, _, group, members] = fields[..] else {
            continue;
        };
        if let Ok(group) = group.parse() {
            if members.split(',').any(|m| m == name) && !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_name_and_uid_with_the_groups_that_list_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbroken\nweb:x:998:997::/var/www:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nweb:x:997:\nadm:x:4:syslog,web\nwebby:x:5:webmaster\nodd:x:6\n",
        )
        .unwrap();
        let root = Root::open(Some(dir.path())).unwrap();
        let web = Reader {
            uid: 998,
            gid: 997,
            groups: vec![997, 4],
        };
        assert_eq!(named(&root, "web"), Some(web.clone()));
        assert_eq!(with_uid(&root, 998), Some(web));
        assert_eq!(named(&root, "broken"), None);
        assert_eq!(with_uid(&root, 1000), None);
        assert_eq!(named(&root, "root").unwrap().groups, vec![0]);
    }
}
