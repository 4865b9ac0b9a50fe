//! [`Headers`]: a case-insensitive, allocation-free view of response headers.

/// Read access to response headers, by case-insensitive name.
///
/// Implemented for slices, arrays and vectors of `(name, value)` pairs whose parts are `&str`,
/// `String`, `&[u8]` or `Vec<u8>`, and, with the `http` feature, for `http::HeaderMap`. Values are
/// bytes because header values need not be UTF-8; the classifier never trusts them to be.
///
/// # Contract
/// `get` must not allocate for the classifier's 2xx path to stay allocation-free, and should
/// return the first value when a name repeats.
pub trait Headers {
    /// The value of the header `name` (ASCII, lower-case), compared case-insensitively.
    fn get(&self, name: &str) -> Option<&[u8]>;
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> Headers for [(K, V)] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>, const N: usize> Headers for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Headers::get(self.as_slice(), name)
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> Headers for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Headers::get(self.as_slice(), name)
    }
}

impl<T: Headers + ?Sized> Headers for &T {
    fn get(&self, name: &str) -> Option<&[u8]> {
        (**self).get(name)
    }
}

#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        // `HeaderMap::get` with a `&str` lower-cases into a stack buffer, no allocation.
        http::HeaderMap::get(self, name).map(http::HeaderValue::as_bytes)
    }
}
