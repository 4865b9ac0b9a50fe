//! Reading configuration text: every misspelt or misplaced option is an error naming it, and no
//! error ever shows a key.

#[path = "config/fields.rs"]
mod fields;
#[path = "config/secrets.rs"]
mod secrets;
