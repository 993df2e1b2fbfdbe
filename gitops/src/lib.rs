//! Manifest patching and the pull-request workflow. Nothing here yet: issues 5 and 6.
