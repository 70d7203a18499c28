//! Finding the one Duo user behind a PSA contact: e-mail or username first, then first and last
//! name, compared after folding case, accents and spacing. Anything but exactly one is refused.
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

/// `fold(s) == folded`, without building the folded string when `s` is ASCII (nearly every
/// directory entry): a lookup compares against every user of the account.
fn folds_to(s: &str, folded: &str) -> bool {
    if !s.is_ascii() {
        return fold(s) == folded;
    }
    let mut mine = s
        .bytes()
        .filter(|b| !char::from(*b).is_whitespace())
        .map(|b| b.to_ascii_lowercase());
    let mut theirs = folded.bytes();
    loop {
        match (mine.next(), theirs.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// [`folds_to`] for an optional field; an empty `folded` never matches.
fn field_folds_to(s: Option<&str>, folded: &str) -> bool {
    !folded.is_empty() && s.is_some_and(|s| folds_to(s, folded))
}

pub fn find(contact: &ContactIdentity, users: &[Candidate]) -> MatchResult {
    if let Some(email) = folded_nonempty(contact.email.as_deref()) {
        let hits: Vec<&Candidate> = users
            .iter()
            .filter(|u| {
                field_folds_to(u.email.as_deref(), &email)
                    || folds_to(&u.username, &email)
                    || u.aliases.iter().any(|a| folds_to(a, &email))
            })
            .collect();
        match hits.as_slice() {
            [one] => {
                return MatchResult::One {
                    user: (*one).clone(),
                    by: MatchBy::Email,
                }
            }
            [] => {}
            many => {
                return MatchResult::Several {
                    count: many.len(),
                    by: MatchBy::Email,
                }
            }
        }
    }
    let (Some(first), Some(last)) = (
        folded_nonempty(contact.first_name.as_deref()),
        folded_nonempty(contact.last_name.as_deref()),
    ) else {
        return MatchResult::None;
    };
    let full = format!("{first}{last}");
    let hits: Vec<&Candidate> = users
        .iter()
        .filter(|u| {
            let by_parts = field_folds_to(u.first_name.as_deref(), &first)
                && field_folds_to(u.last_name.as_deref(), &last);
            by_parts || field_folds_to(u.real_name.as_deref(), &full)
        })
        .collect();
    match hits.as_slice() {
        [one] => MatchResult::One {
            user: (*one).clone(),
            by: MatchBy::Name,
        },
        [] => MatchResult::None,
        many => MatchResult::Several {
            count: many.len(),
            by: MatchBy::Name,
        },
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

    #[test]
    fn the_ascii_comparison_agrees_with_folding() {
        for s in [
            "Alex.Example@Contoso.com",
            " José  de la Cruz",
            "MEGAN bowen",
            "",
            "  ",
            "tab\tseparated",
            "Ångström",
        ] {
            let folded = fold(s);
            assert!(folds_to(s, &folded), "{s:?}");
            assert!(!folds_to(s, &format!("{folded}x")), "{s:?}");
            if !folded.is_empty() {
                assert!(!folds_to(s, &folded[..folded.len() - 1]), "{s:?}");
            }
        }
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
