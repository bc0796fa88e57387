//! A simulated S3 endpoint for the session's multipart uploads: it answers
//! `RequestSpec`s as SeaweedFS and AWS do (XML bodies, quoted ETags, a part
//! number uploaded twice listed twice), keeps part sizes (not bytes), and
//! lets a test break it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use chunkup_core::{Method, RequestSpec, Response, S3Action};

#[derive(Debug, Default)]
pub struct S3Sim {
    /// Upload id → (part number → every upload of it: (size, etag)).
    pub uploads: BTreeMap<String, BTreeMap<u32, Vec<(u64, String)>>>,
    /// Completed objects: upload id → the parts named, in order.
    pub completed: BTreeMap<String, Vec<(u32, String)>>,
    pub aborted: Vec<String>,
    /// Every request seen: (action, part number).
    pub log: Vec<(S3Action, Option<u32>)>,
    pub next_id: u32,
    pub next_etag: u32,
    /// Answer the next UploadParts with 403 "Request has expired".
    pub expire_next_parts: u32,
    /// Answer UploadPart without an ETag (a browser with a CORS rule
    /// that does not expose it).
    pub hide_etag: bool,
}

fn query(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| v.replace("%2F", "/"))
    })
}

impl S3Sim {
    pub fn answer(&mut self, spec: &RequestSpec) -> Response {
        let signing = spec.signing.as_ref().expect("S3 requests are signed");
        let upload = query(&spec.url, "uploadId");
        assert_eq!(
            signing.upload_id, upload,
            "the signer is told the upload: {spec:?}"
        );
        self.log.push((signing.action, signing.part_number));
        match (spec.method, signing.action) {
            (Method::Post, S3Action::CreateMultipartUpload) => {
                assert!(spec.url.contains("?uploads") || spec.url.contains("&uploads"));
                self.next_id += 1;
                let id = format!("up{}_x", self.next_id);
                self.uploads.insert(id.clone(), BTreeMap::new());
                Response::status(200).with_body(format!(
                    "<InitiateMultipartUploadResult><UploadId>{id}</UploadId></InitiateMultipartUploadResult>"
                ))
            }
            (Method::Put, S3Action::UploadPart) => {
                let number: u32 = query(&spec.url, "partNumber").unwrap().parse().unwrap();
                assert_eq!(signing.part_number, Some(number));
                assert!((1..=10_000).contains(&number), "part {number}");
                if self.expire_next_parts > 0 {
                    self.expire_next_parts -= 1;
                    return Response::status(403).with_body(
                        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                    );
                }
                let Some(parts) = self.uploads.get_mut(&upload.unwrap()) else {
                    return no_such_upload();
                };
                self.next_etag += 1;
                let etag = format!("\"etag{}\"", self.next_etag);
                let size = spec.body.map_or(0, |r| r.len());
                parts.entry(number).or_default().push((size, etag.clone()));
                if self.hide_etag {
                    Response::status(200)
                } else {
                    Response::status(200).with_header("ETag", etag)
                }
            }
            (Method::Get, S3Action::ListParts) => {
                let Some(parts) = self.uploads.get(&upload.unwrap()) else {
                    return no_such_upload();
                };
                let marker: u32 = query(&spec.url, "part-number-marker")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0);
                let max: usize = query(&spec.url, "max-parts")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(1000);
                let listed: Vec<_> = parts
                    .range(marker + 1..)
                    .flat_map(|(n, uploads)| uploads.iter().map(move |(s, e)| (*n, *s, e.clone())))
                    .collect();
                let page = &listed[..listed.len().min(max)];
                let mut xml = String::from(
                    "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
                );
                for (n, size, etag) in page {
                    xml.push_str(&format!(
                        "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag><Size>{size}</Size></Part>",
                        etag.replace('"', "&#34;")
                    ));
                }
                let truncated = listed.len() > page.len();
                xml.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
                if let Some((last, _, _)) = page.last() {
                    xml.push_str(&format!(
                        "<NextPartNumberMarker>{last}</NextPartNumberMarker>"
                    ));
                }
                xml.push_str("</ListPartsResult>");
                Response::status(200).with_body(xml)
            }
            (Method::Post, S3Action::CompleteMultipartUpload) => {
                let id = upload.unwrap();
                let body = String::from_utf8(spec.payload.clone().expect("a body")).unwrap();
                let named: Vec<(u32, String)> = body
                    .split("<Part>")
                    .skip(1)
                    .map(|p| {
                        let n = p
                            .split("<PartNumber>")
                            .nth(1)
                            .unwrap()
                            .split('<')
                            .next()
                            .unwrap();
                        let e = p
                            .split("<ETag>")
                            .nth(1)
                            .unwrap()
                            .split("</ETag>")
                            .next()
                            .unwrap();
                        (n.parse().unwrap(), e.to_string())
                    })
                    .collect();
                let Some(parts) = self.uploads.get(&id) else {
                    return no_such_upload();
                };
                // What S3 checks: order, ETags that exist, sizes.
                for (i, (number, etag)) in named.iter().enumerate() {
                    assert!(i == 0 || named[i - 1].0 < *number, "parts out of order");
                    let uploads = parts.get(number).expect("a named part exists");
                    let (size, _) = uploads.iter().find(|(_, e)| e == etag).expect("its ETag");
                    if i + 1 < named.len() {
                        assert!(
                            *size >= 5 * 1024 * 1024,
                            "part {number} of {size} bytes is not the last"
                        );
                    }
                }
                self.completed.insert(id, named);
                Response::status(200)
                    .with_body("<CompleteMultipartUploadResult></CompleteMultipartUploadResult>")
            }
            (Method::Delete, S3Action::AbortMultipartUpload) => {
                let id = upload.unwrap();
                self.uploads.remove(&id);
                self.aborted.push(id);
                Response::status(204)
            }
            other => panic!("unexpected {other:?}: {spec:?}"),
        }
    }

    /// The bytes an upload's completion joined.
    pub fn completed_size(&self, id: &str) -> u64 {
        let named = &self.completed[id];
        named
            .iter()
            .map(|(n, e)| {
                let uploads = self.uploads.get(id).and_then(|p| p.get(n)).unwrap();
                uploads.iter().find(|(_, etag)| etag == e).unwrap().0
            })
            .sum()
    }

    pub fn count(&self, action: S3Action) -> usize {
        self.log.iter().filter(|(a, _)| *a == action).count()
    }
}

fn no_such_upload() -> Response {
    Response::status(404).with_body(
        "<Error><Code>NoSuchUpload</Code><Message>The specified multipart upload does not exist.</Message></Error>",
    )
}
