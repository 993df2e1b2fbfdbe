//! GitHub's error answers: `{"message", "documentation_url", "status"}`,
//! with an `errors` list for validation failures.

use serde_json::{Value, json};

/// The documentation URL GitHub puts on generic errors.
pub const DOCS: &str = "https://docs.github.com/rest";

/// An error answer of the emulated API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `message`.
    pub message: String,
    /// `errors` (validation failures), if any.
    pub errors: Option<Value>,
    /// `documentation_url`.
    pub documentation_url: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    /// An error with `message` and the generic documentation URL.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errors: None,
            documentation_url: DOCS.to_string(),
            headers: Vec::new(),
        }
    }

    /// 404 `Not Found`.
    pub fn not_found() -> ApiError {
        ApiError::new(404, "Not Found")
    }

    /// 401 `Bad credentials`.
    pub fn bad_credentials() -> ApiError {
        ApiError::new(401, "Bad credentials")
    }

    /// 400 `Problems parsing JSON`.
    pub fn bad_json() -> ApiError {
        ApiError::new(400, "Problems parsing JSON")
    }

    /// 422 `Invalid request.\n\n<detail>` (schema-level problems of a body).
    pub fn invalid(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(422, format!("Invalid request.\n\n{detail}"))
    }

    /// 422 `Invalid request.\n\n"<field>" wasn't supplied.`
    pub fn missing(field: &str) -> ApiError {
        ApiError::invalid(format!("\"{field}\" wasn't supplied."))
    }

    /// 422 with a plain message (git data API style: `Reference already exists`).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(422, message)
    }

    /// 422 `Validation Failed` with one `errors` item.
    pub fn validation(error: Value) -> ApiError {
        ApiError {
            errors: Some(json!([error])),
            ..ApiError::new(422, "Validation Failed")
        }
    }

    /// Use another documentation URL.
    pub fn doc(mut self, url: &str) -> ApiError {
        self.documentation_url = url.to_string();
        self
    }

    /// Add a response header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> ApiError {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut v = json!({
            "message": self.message,
            "documentation_url": self.documentation_url,
            "status": self.status.to_string(),
        });
        if let Some(errors) = &self.errors {
            v["errors"] = errors.clone();
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)?;
        if let Some(e) = &self.errors {
            write!(f, " {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}
