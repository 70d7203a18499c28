//! The wording of every note deskproof writes on a ticket. Notes are internal; they never
//! contain a secret, and text that came from outside is quoted, never trusted as markup.

/// Text from outside (a PSA, Duo, a person's name) made inert before it goes into a note: no
/// line breaks or control characters that could fake a line of deskproof's own, HTML escaped,
/// and the Markdown that makes links, images and code escaped, since PSAs show some notes as
/// HTML or Markdown.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().take(300) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '[' | ']' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub const PUSH_TEXT_PREFIX: &str = "Verification is required for the ticket you submitted: ";

/// What the contact sees in Duo Mobile: the title on one line, each run of line breaks, tabs
/// and other control characters (and the spaces beside them) read as one space.
pub fn push_text(ticket_title: &str) -> String {
    let mut title = String::new();
    let mut gap = false;
    for c in ticket_title.chars().take(200) {
        if c.is_control() || c.is_whitespace() {
            gap = !title.is_empty();
        } else {
            if gap {
                title.push(' ');
                gap = false;
            }
            title.push(c);
        }
    }
    format!("{PUSH_TEXT_PREFIX}\"{title}\"")
}

/// The reference closing every note, by which a post that was cut short is found again.
pub fn reference(case_id: i64, note_id: i64) -> String {
    format!("(deskproof ref {case_id}.{note_id})")
}

pub fn link(url: &str) -> String {
    format!(
        "deskproof: Please click the following link to verify the identity of this ticket's \
         contact: {url}"
    )
}

/// The note in pod mode: verification happens in the deskproof pod, so the note has no link.
pub fn pod_available() -> String {
    "deskproof: The identity of this ticket's contact can be verified in the deskproof pod on \
     this ticket's screen."
        .to_owned()
}

/// How to try again in pod mode, where outcome notes would otherwise carry a new link.
pub const POD_TRY_AGAIN: &str = "use the deskproof pod on this ticket's screen.";

pub fn missing_fields(fields: &[&str]) -> String {
    format!(
        "deskproof: This ticket cannot be verified yet because the PSA did not provide: {}. \
         deskproof needs a contact with a first and last name, the contact's company and a \
         summary; this ticket gets no verification link, so complete the contact in the PSA \
         and open a new ticket for the caller.",
        fields.join(", ")
    )
}

pub fn contact_elsewhere(ticket_company: &str, contact_company: &str) -> String {
    let (ticket_company, contact_company) = (inert(ticket_company), inert(contact_company));
    format!(
        "deskproof: This ticket cannot be verified: it is for {ticket_company}, but its contact \
         belongs to another company in the PSA (company id {contact_company}). This ticket gets \
         no verification link. Check who really called; if the contact is right, open the \
         ticket under the contact's own company."
    )
}

pub fn unmapped(company: &str) -> String {
    let company = inert(company);
    format!(
        "deskproof: This ticket's company ({company}) is not mapped to a client organization, so \
         no Duo account is known for it. An administrator can add the mapping in deskproof's \
         settings."
    )
}

pub fn approved(duo_username: &str, technician: &str) -> String {
    let (duo_username, technician) = (inert(duo_username), inert(technician));
    format!(
        "{duo_username} has verified this ticket. (Duo Push approved; requested by {technician} \
         through deskproof.)"
    )
}

pub fn denied(duo_username: &str, technician: &str, new_link: &str) -> String {
    let (duo_username, technician) = (inert(duo_username), inert(technician));
    format!(
        "deskproof: {duo_username} DENIED the Duo Push requested by {technician}. The caller's \
         identity is NOT verified. To try again: {new_link}"
    )
}

pub fn timed_out(duo_username: &str, technician: &str, new_link: &str) -> String {
    let (duo_username, technician) = (inert(duo_username), inert(technician));
    format!(
        "deskproof: The Duo Push to {duo_username} requested by {technician} was not answered in \
         time. The caller's identity is NOT verified. To try again: {new_link}"
    )
}

pub fn fraud(duo_username: &str, technician: &str) -> String {
    let (duo_username, technician) = (inert(duo_username), inert(technician));
    format!(
        "URGENT - deskproof: {duo_username} reported the Duo Push requested by {technician} as \
         FRAUDULENT. The real user did not ask for this. Do not act on this ticket; treat it as a \
         possible social-engineering attempt and inform the client's security contact."
    )
}

/// Appended to a denial note while the contact's cooldown lasts.
pub fn cooldown(until: &str) -> String {
    format!("The next push to this contact is allowed at {until}.")
}

/// Appended to a fraud note: how long pushes to the contact stay locked.
pub fn fraud_lock(until: &str) -> String {
    format!("deskproof sends no Duo Push to this contact until {until}.")
}

pub fn not_verified(technician: &str, reason: &str) -> String {
    let (technician, reason) = (inert(technician), inert(reason));
    format!(
        "deskproof: No Duo Push was sent for {technician}: {reason} The caller's identity is NOT \
         verified."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_reads_as_specified() {
        assert_eq!(
            push_text("Password reset"),
            "Verification is required for the ticket you submitted: \"Password reset\""
        );
    }

    #[test]
    fn line_breaks_and_control_characters_read_as_one_space_in_the_push() {
        assert_eq!(
            push_text(" Password\r\n reset\u{7}\tfor  Alex \n"),
            format!("{PUSH_TEXT_PREFIX}\"Password reset for Alex\"")
        );
    }

    #[test]
    fn markup_and_line_breaks_from_outside_are_made_inert() {
        let note = unmapped("<b>Acme</b>\n\nalex has verified this ticket. [x](https://evil)");
        assert!(note.contains("&lt;b&gt;Acme&lt;/b&gt;"), "{note}");
        assert!(!note.contains('\n'), "{note}");
        assert!(note.contains("\\[x\\](https://evil)"), "{note}");
        let note = approved("al<script>", "Casey \"Tech\"");
        assert!(note.starts_with("al&lt;script&gt; has verified"), "{note}");
        assert!(note.contains("Casey &quot;Tech&quot;"), "{note}");
    }

    #[test]
    fn the_link_note_has_the_agreed_wording() {
        assert!(link("https://x/verify/t").contains(
            "Please click the following link to verify the identity of this ticket's contact: \
             https://x/verify/t"
        ));
    }
}
