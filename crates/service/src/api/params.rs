//! Mixpanel-style parameters: a query string and a form-encoded body, read together
//! (P22: `events` repeated for several events; `status` and `timeline` take either).

use crate::ops::ApiError;

/// The parameters of one request, in order.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Reads the query string and the form body.
    pub fn parse(query: Option<&str>, body: &[u8]) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        if !body.is_empty() {
            if std::str::from_utf8(body).is_err() {
                return Err(ApiError::BadRequest(
                    "the body is not UTF-8; send application/x-www-form-urlencoded parameters"
                        .into(),
                ));
            }
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Ok(Params { pairs })
    }

    /// Refuses a parameter this endpoint does not take, naming those it does.
    pub fn check_known(&self, known: &[&str]) -> Result<(), ApiError> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(ApiError::BadRequest(format!(
                "unknown parameter {k:?}; this endpoint takes {}",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The one value of `key` (400 if given twice).
    pub fn one(&self, key: &'static str) -> Result<Option<&str>, ApiError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == key);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(ApiError::BadRequest(format!(
                "{key}: given more than once; give it once"
            )));
        }
        Ok(first)
    }

    /// The value of `key`, required.
    pub fn required(&self, key: &'static str) -> Result<&str, ApiError> {
        self.one(key)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("{key}: is required")))
    }

    /// Every value of a repeated `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether `key` is given at all.
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// A boolean `true` or `false`.
    pub fn bool(&self, key: &'static str) -> Result<Option<bool>, ApiError> {
        match self.one(key)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::BadRequest(format!(
                "{key}: {v:?} is not a boolean; use true or false"
            ))),
        }
    }

    /// The project id (required by this server, also with an API secret).
    pub fn project_id(&self) -> Result<u64, ApiError> {
        let text = self.one("project_id")?.ok_or_else(|| {
            ApiError::BadRequest(
                "project_id: is required (this server serves several projects and needs it \
                 also with an API secret)"
                    .into(),
            )
        })?;
        text.parse::<u64>().ok().filter(|p| *p > 0).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "project_id: {text:?} is not a project id (a positive integer)"
            ))
        })
    }
}
