//! What a registry lists rather than serves: a repository's tags (`pull --all-tags`) and the
//! search of an index (`search`).

use crate::client::{encode, read_limited, status_error, Client, Payload};
use crate::Error;
use hako_image::Reference;

/// The most a tag list page or a search answer may take.
const MAX_LISTING: u64 = 8 << 20;

/// The most tags `pull --all-tags` takes from one repository.
const MAX_TAGS: usize = 10_000;

fn get_json(client: &Client, url: &str) -> Result<(serde_json::Value, Option<String>), Error> {
    let resp = client.send(
        "GET",
        url,
        &[("Accept", "application/json")],
        Payload::Empty,
    )?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(status_error(resp, url, status));
    }
    let link = resp
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_limited(resp, url, MAX_LISTING)?.map_err(|_| Error::TooLarge {
        what: url.to_string(),
        limit: MAX_LISTING,
        why: "a listing may have",
    })?;
    let v = serde_json::from_slice(&body).map_err(|e| Error::Status {
        url: url.to_string(),
        status,
        message: format!("the answer is not JSON: {e}"),
    })?;
    Ok((v, link))
}

/// The next page a `Link: <url>; rel="next"` header names.
fn next_page(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// The tags of `reference`'s repository as the registry lists them (`/v2/NAME/tags/list`,
/// every page), sorted.
pub fn list_tags(reference: &Reference) -> Result<Vec<String>, Error> {
    let client = Client::new(reference.domain(), reference.path(), false)?;
    let mut url = client.url("tags/list");
    let mut tags = Vec::new();
    let mut visited = std::collections::HashSet::new();
    // A hostile registry must not keep us paging for ever (a page linking back to one already
    // read) nor fill memory with tags.
    loop {
        if !visited.insert(url.clone()) {
            return Err(Error::Status {
                url,
                status: 200,
                message: "the tag list's pages link back to a page already read".into(),
            });
        }
        let (v, link) = get_json(&client, &url)?;
        for t in v["tags"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                tags.push(t.to_string());
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(Error::Status {
                url,
                status: 200,
                message: format!(
                    "{} lists more than {MAX_TAGS} tags, the most `pull --all-tags` takes",
                    reference.familiar_repository()
                ),
            });
        }
        match link.as_deref().and_then(next_page) {
            Some(next) => url = client.absolute(next),
            None => break,
        }
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// One result of a search (the index's `/v1/search` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// The repository.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its stars.
    pub star_count: u64,
    /// An official image.
    pub is_official: bool,
    /// Built automatically (a field Docker Hub no longer fills).
    pub is_automated: bool,
}

/// Searches the index `index` (a registry's domain; `docker.io` is Docker Hub's index) for
/// `term`, at most `limit` results, as the registry's `/v1/search` answers. A registry without
/// that endpoint (a plain distribution registry answers 404) is
/// [`Error::SearchUnsupported`].
pub fn search(index: &str, term: &str, limit: u32) -> Result<Vec<SearchResult>, Error> {
    let client = Client::new(index, "", false)?;
    let base = if index == "docker.io" {
        "https://index.docker.io"
    } else {
        client.base()
    };
    let url = format!("{base}/v1/search?q={}&n={limit}", encode(term));
    let (v, _) = get_json(&client, &url).map_err(|e| match e {
        Error::Status { status, url, .. } if matches!(status, 404 | 405 | 501) => {
            Error::SearchUnsupported {
                registry: index.to_string(),
                url,
                status,
            }
        }
        other => other,
    })?;
    let text = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    Ok(v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| SearchResult {
            name: text(r, "name"),
            description: text(r, "description"),
            star_count: r["star_count"].as_u64().unwrap_or(0),
            is_official: r["is_official"].as_bool().unwrap_or(false),
            is_automated: r["is_automated"].as_bool().unwrap_or(false),
        })
        .take(limit as usize)
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_headers_name_the_next_page() {
        assert_eq!(
            super::next_page(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(super::next_page(r#"</x>; rel="prev""#), None);
    }
}
