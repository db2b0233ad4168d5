//! The parts of a stored manifest its page shows, read straight from the stored bytes without
//! building the whole document: each long list (layers, index children, annotations) is
//! counted, and only the requested page of it is kept. Strings are borrowed from the stored
//! bytes where JSON allows, so a page costs about one page of entries whatever the size of
//! the manifest.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Entries of a long list shown on one page.
pub const PAGE_SIZE: usize = 100;
/// Annotations shown with each layer or child; the rest are counted.
pub const DESCRIPTOR_ANNOTATIONS: usize = 8;

/// Which page (from 0) of each long list to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pages {
    pub layers: usize,
    pub manifests: usize,
    pub annotations: usize,
}

/// Entries `first..first + items.len()` of a list of `total`.
#[derive(Debug)]
pub struct Window<T> {
    pub total: usize,
    pub first: usize,
    pub items: Vec<T>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            total: 0,
            first: 0,
            items: Vec::new(),
        }
    }
}

/// A string from the manifest, borrowed when it has no escapes. Values that are not strings
/// (which annotations should never be) are shown as short text, never kept whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed("null")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(Cow::Borrowed("(a list: see the raw manifest)")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(Cow::Borrowed("(an object: see the raw manifest)")))
            }
        }
        d.deserialize_any(TextVisitor(PhantomData))
    }
}

/// One annotation: key and value.
pub type Annotation<'a> = (Text<'a>, Text<'a>);

/// A platform of an index child.
#[derive(Debug, Deserialize)]
pub struct Platform<'a> {
    #[serde(default, borrow)]
    pub os: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub architecture: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub variant: Option<Text<'a>>,
    #[serde(default, borrow, rename = "os.version")]
    pub os_version: Option<Text<'a>>,
}

/// A descriptor (config, layer, child manifest, subject) with its first few annotations.
#[derive(Debug, Deserialize)]
pub struct Descriptor<'a> {
    #[serde(default, borrow, rename = "mediaType")]
    pub media_type: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub digest: Option<Text<'a>>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, borrow)]
    pub platform: Option<Platform<'a>>,
    #[serde(default, borrow)]
    pub annotations: AnnotationPreview<'a>,
}

/// The first [`DESCRIPTOR_ANNOTATIONS`] annotations of a descriptor, and how many it has.
#[derive(Debug, Default)]
pub struct AnnotationPreview<'a>(pub Window<Annotation<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for AnnotationPreview<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let first = Range {
            skip: 0,
            take: DESCRIPTOR_ANNOTATIONS,
        };
        AnnotationWindow(first)
            .deserialize(d)
            .map(AnnotationPreview)
    }
}

/// What a manifest page shows of the manifest.
#[derive(Debug, Default)]
pub struct Outline<'a> {
    pub artifact_type: Option<Text<'a>>,
    pub config: Option<Descriptor<'a>>,
    pub subject: Option<Descriptor<'a>>,
    pub layers: Window<Descriptor<'a>>,
    pub manifests: Window<Descriptor<'a>>,
    pub annotations: Window<Annotation<'a>>,
}

impl<'a> Outline<'a> {
    /// Reads the outline of `stored`, keeping the pages asked for.
    pub fn read(stored: &'a [u8], pages: Pages) -> Result<Outline<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(stored);
        let outline = OutlineSeed(pages).deserialize(&mut de)?;
        de.end()?;
        Ok(outline)
    }
}

struct OutlineSeed(Pages);

impl<'de> DeserializeSeed<'de> for OutlineSeed {
    type Value = Outline<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Outline<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OutlineSeed {
    type Value = Outline<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a manifest (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Outline<'de>, A::Error> {
        let pages = self.0;
        let mut outline = Outline::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "artifactType" => outline.artifact_type = map.next_value()?,
                "config" => outline.config = map.next_value()?,
                "subject" => outline.subject = map.next_value()?,
                "layers" => {
                    outline.layers =
                        map.next_value_seed(DescriptorWindow(Range::page(pages.layers)))?;
                }
                "manifests" => {
                    outline.manifests =
                        map.next_value_seed(DescriptorWindow(Range::page(pages.manifests)))?;
                }
                "annotations" => {
                    outline.annotations =
                        map.next_value_seed(AnnotationWindow(Range::page(pages.annotations)))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(outline)
    }
}

/// Which entries of a list to keep: `skip..skip + take`.
#[derive(Clone, Copy)]
struct Range {
    skip: usize,
    take: usize,
}

impl Range {
    fn page(page: usize) -> Range {
        Range {
            skip: page.saturating_mul(PAGE_SIZE),
            take: PAGE_SIZE,
        }
    }

    fn keeps(self, index: usize) -> bool {
        index >= self.skip && index - self.skip < self.take
    }

    fn empty<T>(self) -> Window<T> {
        Window {
            total: 0,
            first: self.skip,
            items: Vec::new(),
        }
    }
}

/// Reads a JSON array of descriptors keeping one range of them; `null` reads as empty.
struct DescriptorWindow(Range);

impl<'de> DeserializeSeed<'de> for DescriptorWindow {
    type Value = Window<Descriptor<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DescriptorWindow {
    type Value = Window<Descriptor<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of descriptors")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.0.empty())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut window = self.0.empty();
        loop {
            let more = if self.0.keeps(window.total) {
                seq.next_element::<Descriptor<'de>>()?
                    .map(|item| window.items.push(item))
                    .is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(window);
            }
            window.total += 1;
        }
    }
}

/// Reads a JSON object of annotations keeping one range of its entries, in the order they
/// are stored; `null` reads as empty.
struct AnnotationWindow(Range);

impl<'de> DeserializeSeed<'de> for AnnotationWindow {
    type Value = Window<Annotation<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnnotationWindow {
    type Value = Window<Annotation<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of annotations")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.0.empty())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut window = self.0.empty();
        loop {
            let more = if self.0.keeps(window.total) {
                map.next_entry::<Text<'de>, Text<'de>>()?
                    .map(|entry| window.items.push(entry))
                    .is_some()
            } else {
                map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(window);
            }
            window.total += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(i: usize) -> serde_json::Value {
        json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
               "digest": format!("sha256:{i:064x}"), "size": i})
    }

    #[test]
    fn only_the_asked_page_of_each_list_is_kept() {
        let annotations: serde_json::Map<String, serde_json::Value> = (0..150)
            .map(|i| (format!("k{i:03}"), json!(format!("v{i}"))))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "layers": (0..250).map(layer).collect::<Vec<_>>(),
            "annotations": annotations,
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let pages = Pages {
            layers: 2,
            annotations: 1,
            ..Pages::default()
        };
        let o = Outline::read(&bytes, pages).unwrap();
        assert_eq!((o.layers.total, o.layers.first), (250, 200));
        assert_eq!(o.layers.items.len(), 50);
        assert_eq!(o.layers.items[0].size, Some(200));
        assert_eq!(o.annotations.total, 150);
        assert_eq!(o.annotations.items.len(), 50);
        assert_eq!(&*o.annotations.items[0].0, "k100");
        assert_eq!(o.manifests.total, 0);
        let past_the_end = Outline::read(
            &bytes,
            Pages {
                layers: 9,
                ..Pages::default()
            },
        )
        .unwrap();
        assert_eq!(past_the_end.layers.total, 250);
        assert!(past_the_end.layers.items.is_empty());
    }

    #[test]
    fn descriptors_keep_a_few_annotations_and_odd_values_stay_short() {
        let many: serde_json::Map<String, serde_json::Value> =
            (0..20).map(|i| (format!("a{i:02}"), json!("x"))).collect();
        let manifest = json!({
            "artifactType": "application/x.\"quoted\"",
            "config": {"mediaType": "application/x", "digest": "sha256:00", "size": 2},
            "subject": {"digest": "sha256:11"},
            "manifests": [{"digest": "sha256:22", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8", "os.version": "1", "features": ["x"]},
                           "annotations": many}],
            "annotations": {"a": 5, "b": true, "c": null, "d": [1, [2]], "e": {"a": {"b": 1}}},
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let o = Outline::read(&bytes, Pages::default()).unwrap();
        assert_eq!(o.artifact_type.as_deref(), Some("application/x.\"quoted\""));
        assert_eq!(o.config.as_ref().unwrap().size, Some(2));
        assert_eq!(
            o.subject.as_ref().unwrap().digest.as_deref(),
            Some("sha256:11")
        );
        let child = &o.manifests.items[0];
        let p = child.platform.as_ref().unwrap();
        assert_eq!(
            (
                p.os.as_deref(),
                p.variant.as_deref(),
                p.os_version.as_deref()
            ),
            (Some("linux"), Some("v8"), Some("1"))
        );
        assert_eq!(child.annotations.0.total, 20);
        assert_eq!(child.annotations.0.items.len(), DESCRIPTOR_ANNOTATIONS);
        let values: Vec<&str> = o.annotations.items.iter().map(|(_, v)| &**v).collect();
        assert_eq!(values[..3], ["5", "true", "null"]);
        assert!(values[3].starts_with("(a list") && values[4].starts_with("(an object"));
    }

    #[test]
    fn what_is_not_a_manifest_is_an_error() {
        assert!(Outline::read(b"[1,2]", Pages::default()).is_err());
        assert!(Outline::read(b"{\"layers\": 5}", Pages::default()).is_err());
        assert!(Outline::read(b"{} trailing", Pages::default()).is_err());
        let huge_page = Pages {
            layers: usize::MAX,
            ..Pages::default()
        };
        let o = Outline::read(b"{\"layers\": [{}, {}]}", huge_page).unwrap();
        assert_eq!(o.layers.total, 2);
    }
}
