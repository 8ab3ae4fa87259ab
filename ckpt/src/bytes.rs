//! serde helpers: byte buffers travel as bytes (a length and one copy), not as sequences
//! of numbers, which costs a call per byte. Used with `#[serde(with = ...)]` for the
//! shapes `serde_bytes` does not cover.

/// `Vec<Vec<u8>>`.
pub mod list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let b: Vec<&Bytes> = v.iter().map(|x| Bytes::new(x)).collect();
        b.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v: Vec<ByteBuf> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// `Vec<(u64, Vec<u8>)>`: bytes at addresses.
pub mod placed {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(v: &[(u64, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let b: Vec<(u64, &Bytes)> = v.iter().map(|(a, x)| (*a, Bytes::new(x))).collect();
        b.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, Vec<u8>)>, D::Error> {
        let v: Vec<(u64, ByteBuf)> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|(a, b)| (a, b.into_vec())).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct T {
        #[serde(with = "super::list")]
        l: Vec<Vec<u8>>,
        #[serde(with = "super::placed")]
        p: Vec<(u64, Vec<u8>)>,
        #[serde(with = "serde_bytes")]
        b: Vec<u8>,
    }

    #[test]
    fn byte_buffers_round_trip() {
        let t = T {
            l: vec![vec![], vec![1, 2, 3]],
            p: vec![(0x7000, vec![9; 5000]), (1, vec![])],
            b: (0..=255).collect(),
        };
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<T>(&j).unwrap(), t);
    }
}
