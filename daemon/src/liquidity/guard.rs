//! The treasury policy in force and what each rail holds against its reserve.
