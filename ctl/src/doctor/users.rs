//! Who a cron line runs as: the users and groups of `/etc/passwd` and `/etc/group`, read under
//! the root as the tables are, as cron finds them with the files backend (a user only a
//! directory service knows is not found).

use super::files::Root;
use crate::pidfile::Reader;
use std::path::Path;

/// The users and groups, read once per run.
pub struct Users {
    passwd: String,
    group: String,
}

impl Users {
    /// Reads `/etc/passwd` and `/etc/group` under `root` (either missing: empty).
    pub fn read(root: &Root) -> Users {
        let text = |path: &str| {
            root.read(Path::new(path))
                .map_or_else(|_| String::new(), |f| f.text)
        };
        Users {
            passwd: text("/etc/passwd"),
            group: text("/etc/group"),
        }
    }

    /// The user named `name`, with their groups.
    pub fn named(&self, name: &str) -> Option<Reader> {
        self.find(|n, _| n == name)
    }

    /// The user whose uid is `uid`, with their groups.
    pub fn with_uid(&self, uid: u32) -> Option<Reader> {
        self.find(|_, u| u == uid)
    }

    fn find(&self, is: impl Fn(&str, u32) -> bool) -> Option<Reader> {
        let (name, uid, gid) = self.passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            is(name, uid).then_some((name, uid, gid))
        })?;
        Some(Reader {
            uid,
            gid,
            groups: self.groups(name, gid),
        })
    }

    /// `gid` and every group whose member list names `name`, as `initgroups` finds them.
    fn groups(&self, name: &str, gid: u32) -> Vec<u32> {
        let mut groups = vec![gid];
        for line in self.group.lines() {
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
        let users = Users::read(&Root::open(Some(dir.path())).unwrap());
        let web = Reader {
            uid: 998,
            gid: 997,
            groups: vec![997, 4],
        };
        assert_eq!(users.named("web"), Some(web.clone()));
        assert_eq!(users.with_uid(998), Some(web));
        assert_eq!(users.named("broken"), None);
        assert_eq!(users.with_uid(1000), None);
        assert_eq!(users.named("root").unwrap().groups, vec![0]);
    }
}
