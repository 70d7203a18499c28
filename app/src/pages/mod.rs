//! One module per page, named after what the person sees.
pub mod audit;
pub mod home;
pub mod layout;
pub mod not_found;
pub mod pod;
pub mod settings;
pub mod signin;
pub mod verify;
