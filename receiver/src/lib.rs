//! heal8s service.
