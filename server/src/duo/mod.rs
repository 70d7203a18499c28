//! Duo Security APIs: request signing, the Auth, Admin and Accounts API client.
