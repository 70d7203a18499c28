//! Splitting a single full-name field into first and last name, for PSAs that keep only one
//! (Freshdesk's `name`, HaloPSA's `name` when `firstname`/`surname` are absent).
//!
//! The rule, in order:
//!
//! 1. White space is trimmed and runs of it become one space. Letters are kept as typed:
//!    accents are never removed here (matching folds them later).
//! 2. An empty name, or one containing `@` (Freshdesk fills `name` with the e-mail address
//!    when a requester writes in without one), gives neither first nor last name.
//! 3. `Last, First` — one comma with words on both sides — gives first = after the comma,
//!    last = before it.
//! 4. One word gives a first name only. The ticket is then reported as missing the contact's
//!    last name: a technician fixes the contact's name in the PSA.
//! 5. Two or more words: the first word is the first name, all the others are the last name
//!    (`Mary Ann Smith` → `Mary` / `Ann Smith`, `José de la Cruz` → `José` / `de la Cruz`).
//!    Duo name matching also compares the whole name, folded without spaces, with the Duo
//!    user's real name, so a three-part name still matches whichever way Duo splits it.
//!
//! The contact's e-mail address is always tried before any name when looking for the Duo
//! user; the name only matters when the e-mail finds nobody.

/// First and last name from one full-name field, by the rule above.
pub fn split_full_name(full: &str) -> (Option<String>, Option<String>) {
    let words: Vec<&str> = full.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.is_empty() || joined.contains('@') {
        return (None, None);
    }
    if let Some((last, first)) = joined.split_once(',') {
        let (first, last) = (first.trim(), last.trim());
        if !first.is_empty() && !last.is_empty() && !first.contains(',') {
            return (Some(first.to_owned()), Some(last.to_owned()));
        }
    }
    match words.split_first() {
        Some((first, [])) => (Some((*first).to_owned()), None),
        Some((first, rest)) => (Some((*first).to_owned()), Some(rest.join(" "))),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (Option<String>, Option<String>) {
        split_full_name(s)
    }

    fn names(first: Option<&str>, last: Option<&str>) -> (Option<String>, Option<String>) {
        (first.map(str::to_owned), last.map(str::to_owned))
    }

    #[test]
    fn a_single_word_is_a_first_name_without_a_last_name() {
        assert_eq!(split("Cher"), names(Some("Cher"), None));
        assert_eq!(split("  Pat  "), names(Some("Pat"), None));
    }

    #[test]
    fn two_words_are_first_and_last() {
        assert_eq!(split("Alex Example"), names(Some("Alex"), Some("Example")));
    }

    #[test]
    fn three_part_names_keep_everything_after_the_first_word_as_last_name() {
        assert_eq!(
            split("Mary Ann  Smith"),
            names(Some("Mary"), Some("Ann Smith"))
        );
        assert_eq!(
            split("José de la Cruz"),
            names(Some("José"), Some("de la Cruz"))
        );
    }

    #[test]
    fn accents_are_kept_as_typed() {
        assert_eq!(
            split("Zoë Ångström-Núñez"),
            names(Some("Zoë"), Some("Ångström-Núñez"))
        );
        assert_eq!(split("Łukasz"), names(Some("Łukasz"), None));
    }

    #[test]
    fn last_comma_first_is_turned_around() {
        assert_eq!(split("Example, Alex"), names(Some("Alex"), Some("Example")));
        assert_eq!(
            split("de la Cruz, José"),
            names(Some("José"), Some("de la Cruz"))
        );
        assert_eq!(split("Example,"), names(Some("Example,"), None));
    }

    #[test]
    fn an_email_or_blank_name_gives_no_name() {
        assert_eq!(split("alex@contoso.example"), names(None, None));
        assert_eq!(split("   "), names(None, None));
    }
}
