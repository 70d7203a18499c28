//! Finding the one Duo user behind a PSA contact: e-mail or username first, then first and last
//! name, compared after folding case, accents and spacing. Anything but exactly one is refused.
use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// What the directory says about a Duo user, as far as matching needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub user_id: String,
    pub username: String,
    pub aliases: Vec<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub real_name: Option<String>,
    pub status: String,
    pub is_enrolled: bool,
}

/// The contact as the PSA gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactIdentity {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchBy {
    Email,
    Name,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchResult {
    One { user: Candidate, by: MatchBy },
    None,
    Several { count: usize, by: MatchBy },
}

/// Lower case, accents removed, all white space removed: `" José  de la Cruz"` → `"josedelacruz"`.
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn folded_nonempty(s: Option<&str>) -> Option<String> {
    s.map(fold).filter(|f| !f.is_empty())
}

/// A Duo account's users, with their folded addresses and names worked out once per listing
/// and indexed, so finding a contact among thousands of users is a few look-ups instead of a
/// comparison with each.
#[derive(Debug, Default)]
pub struct Directory {
    users: Vec<Candidate>,
    /// Folded e-mail addresses, usernames and aliases → users.
    by_address: HashMap<String, Vec<usize>>,
    /// Folded (first name, last name) → users.
    by_parts: HashMap<(String, String), Vec<usize>>,
    /// Folded real names → users.
    by_real_name: HashMap<String, Vec<usize>>,
}

impl Directory {
    pub fn new(users: Vec<Candidate>) -> Directory {
        let mut directory = Directory::default();
        for (n, user) in users.iter().enumerate() {
            let addresses = user
                .email
                .iter()
                .chain(std::iter::once(&user.username))
                .chain(&user.aliases);
            for address in addresses {
                if let Some(folded) = folded_nonempty(Some(address)) {
                    add(&mut directory.by_address, folded, n);
                }
            }
            let first = folded_nonempty(user.first_name.as_deref());
            let last = folded_nonempty(user.last_name.as_deref());
            if let (Some(first), Some(last)) = (first, last) {
                add(&mut directory.by_parts, (first, last), n);
            }
            if let Some(real_name) = folded_nonempty(user.real_name.as_deref()) {
                add(&mut directory.by_real_name, real_name, n);
            }
        }
        directory.users = users;
        directory
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The users the contact is: those whose e-mail, username or an alias folds to the
    /// contact's e-mail; failing any, those whose first and last name, or whose real name,
    /// fold to the contact's. Exactly one is a match.
    pub fn find(&self, contact: &ContactIdentity) -> MatchResult {
        let found = |hits: &[usize], by: MatchBy| match hits {
            [] => None,
            [one] => Some(MatchResult::One {
                user: self.users[*one].clone(),
                by,
            }),
            many => Some(MatchResult::Several {
                count: many.len(),
                by,
            }),
        };
        if let Some(email) = folded_nonempty(contact.email.as_deref()) {
            let hits = self.by_address.get(&email).map_or(&[][..], Vec::as_slice);
            if let Some(result) = found(hits, MatchBy::Email) {
                return result;
            }
        }
        let (Some(first), Some(last)) = (
            folded_nonempty(contact.first_name.as_deref()),
            folded_nonempty(contact.last_name.as_deref()),
        ) else {
            return MatchResult::None;
        };
        let full = format!("{first}{last}");
        let mut hits: Vec<usize> = self
            .by_parts
            .get(&(first, last))
            .into_iter()
            .chain(self.by_real_name.get(&full))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        found(&hits, MatchBy::Name).unwrap_or(MatchResult::None)
    }
}

/// Adds user `n` under `key`, once.
fn add<K: std::hash::Hash + Eq>(index: &mut HashMap<K, Vec<usize>>, key: K, n: usize) {
    let users = index.entry(key).or_default();
    if users.last() != Some(&n) {
        users.push(n);
    }
}

/// `alex.example` → `al***le`: enough for a technician to recognise, not to harvest.
pub fn mask_username(username: &str) -> String {
    let chars: Vec<char> = username.chars().collect();
    if chars.len() <= 4 {
        return format!("{}***", chars.first().copied().unwrap_or('*'));
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, username: &str, first: &str, last: &str, email: Option<&str>) -> Candidate {
        Candidate {
            user_id: id.into(),
            username: username.into(),
            aliases: vec![],
            email: email.map(Into::into),
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            real_name: Some(format!("{first} {last}")),
            status: "active".into(),
            is_enrolled: true,
        }
    }

    fn contact(first: &str, last: &str, email: Option<&str>) -> ContactIdentity {
        ContactIdentity {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            email: email.map(Into::into),
        }
    }

    fn find(contact: &ContactIdentity, users: &[Candidate]) -> MatchResult {
        Directory::new(users.to_vec()).find(contact)
    }

    /// The rule written out as a comparison with every user, for the indexes to agree with.
    fn compared_with_each(contact: &ContactIdentity, users: &[Candidate]) -> MatchResult {
        let same = |field: Option<&str>, folded: &str| {
            !folded.is_empty() && field.is_some_and(|f| fold(f) == folded)
        };
        let result = |hits: Vec<&Candidate>, by: MatchBy| match hits.as_slice() {
            [] => MatchResult::None,
            [one] => MatchResult::One {
                user: (*one).clone(),
                by,
            },
            many => MatchResult::Several {
                count: many.len(),
                by,
            },
        };
        let email = contact.email.as_deref().map(fold).unwrap_or_default();
        let by_email: Vec<&Candidate> = users
            .iter()
            .filter(|u| {
                same(u.email.as_deref(), &email)
                    || same(Some(&u.username), &email)
                    || u.aliases.iter().any(|a| same(Some(a), &email))
            })
            .collect();
        if !by_email.is_empty() {
            return result(by_email, MatchBy::Email);
        }
        let first = contact.first_name.as_deref().map(fold).unwrap_or_default();
        let last = contact.last_name.as_deref().map(fold).unwrap_or_default();
        if first.is_empty() || last.is_empty() {
            return MatchResult::None;
        }
        let by_name = users
            .iter()
            .filter(|u| {
                (same(u.first_name.as_deref(), &first) && same(u.last_name.as_deref(), &last))
                    || same(u.real_name.as_deref(), &format!("{first}{last}"))
            })
            .collect();
        result(by_name, MatchBy::Name)
    }

    #[test]
    fn the_indexes_find_what_comparing_with_every_user_finds() {
        // Arrange: users whose names and addresses differ only by case, accents and spacing,
        // share names or addresses, or lack fields; contacts made of the same pieces.
        let firsts = ["José", "jose", "Sam", "", " Ann  Marie"];
        let lasts = ["de la Cruz", "DELACRUZ", "Lee", "", "Ångström"];
        let emails = [
            None,
            Some("sam@x.example"),
            Some("SAM@x.example "),
            Some("j.c@x.example"),
        ];
        let mut users = Vec::new();
        for (n, (first, last)) in firsts
            .iter()
            .flat_map(|f| lasts.iter().map(move |l| (f, l)))
            .enumerate()
        {
            users.push(Candidate {
                user_id: format!("U{n}"),
                username: if n % 7 == 0 {
                    "Sam@X.example".into()
                } else {
                    format!("user{n}")
                },
                aliases: if n % 5 == 0 {
                    vec!["j.c@x.example".into()]
                } else {
                    vec![]
                },
                email: emails[n % emails.len()].map(Into::into),
                first_name: (!first.is_empty()).then(|| first.to_string()),
                last_name: (!last.is_empty()).then(|| last.to_string()),
                real_name: (n % 3 == 0).then(|| format!("{first} {last}")),
                status: "active".into(),
                is_enrolled: true,
            });
        }
        let directory = Directory::new(users.clone());

        // Act and assert
        let mut checked = 0;
        for first in firsts.iter().chain(&["Nobody"]) {
            for last in lasts.iter().chain(&["Else"]) {
                for email in emails.iter().chain(&[Some("nobody@x.example")]) {
                    let c = ContactIdentity {
                        first_name: Some(first.to_string()),
                        last_name: Some(last.to_string()),
                        email: email.map(Into::into),
                    };
                    assert_eq!(directory.find(&c), compared_with_each(&c, &users), "{c:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 6 * 6 * 5);
    }

    #[test]
    fn folding_ignores_case_accents_and_spacing() {
        assert_eq!(fold(" José  de la CRUZ "), "josedelacruz");
        assert_eq!(fold("Zoë"), "zoe");
        assert_eq!(fold("Ångström"), "angstrom");
    }

    #[test]
    fn an_email_match_wins_over_a_name_match() {
        let users = [
            user(
                "U1",
                "alex",
                "Alex",
                "Example",
                Some("alex.example@contoso.example"),
            ),
            user(
                "U2",
                "alex2",
                "Alex",
                "Example",
                Some("other@contoso.example"),
            ),
        ];
        let r = find(
            &contact("Alex", "Example", Some("Alex.Example@Contoso.example")),
            &users,
        );
        assert_eq!(
            r,
            MatchResult::One {
                user: users[0].clone(),
                by: MatchBy::Email
            }
        );
    }

    #[test]
    fn a_username_or_alias_equal_to_the_email_matches() {
        let mut u = user("U1", "x", "A", "B", None);
        u.aliases = vec!["sam@contoso.example".into()];
        let r = find(
            &contact("Q", "R", Some("SAM@contoso.example")),
            &[u.clone()],
        );
        assert_eq!(
            r,
            MatchResult::One {
                user: u,
                by: MatchBy::Email
            }
        );
    }

    #[test]
    fn names_match_when_no_email_does() {
        let users = [user("U1", "jdoe", "José", "Núñez", None)];
        let r = find(&contact("jose", "NUNEZ", Some("unknown@x.example")), &users);
        assert!(matches!(
            r,
            MatchResult::One {
                by: MatchBy::Name,
                ..
            }
        ));
    }

    #[test]
    fn the_real_name_is_used_when_first_and_last_are_missing() {
        let mut u = user("U1", "mk", "", "", None);
        u.first_name = None;
        u.last_name = None;
        u.real_name = Some("Mary  Kay".into());
        let r = find(&contact("Mary", "Kay", None), &[u]);
        assert!(matches!(
            r,
            MatchResult::One {
                by: MatchBy::Name,
                ..
            }
        ));
    }

    #[test]
    fn two_users_with_the_same_name_are_refused_with_their_count() {
        let users = [
            user("U1", "a", "Sam", "Lee", None),
            user("U2", "b", "Sam", "Lee", None),
            user("U3", "c", "Sam", "Leeds", None),
        ];
        assert_eq!(
            find(&contact("sam", "lee", None), &users),
            MatchResult::Several {
                count: 2,
                by: MatchBy::Name
            }
        );
    }

    #[test]
    fn no_name_and_no_email_matches_nobody() {
        let users = [user("U1", "a", "Sam", "Lee", None)];
        let c = ContactIdentity {
            first_name: Some("Sam".into()),
            ..Default::default()
        };
        assert_eq!(find(&c, &users), MatchResult::None);
        assert_eq!(
            find(&contact("Kim", "Lee", None), &users),
            MatchResult::None
        );
    }

    #[test]
    fn usernames_are_masked() {
        assert_eq!(mask_username("alex.example"), "al***le");
        assert_eq!(mask_username("bob"), "b***");
    }
}
