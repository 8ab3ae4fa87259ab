//! A checkpoint directory: `image.json` (the [`ProcessImage`], versioned) and `pages.img`
//! (the page runs of its index, back to back). See `docs/image-format.md`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::image::{ProcessImage, IMAGE_VERSION, PAGE_SIZE, READS_VERSIONS};
use crate::pages::{ImagePages, PageSource};
use crate::PageError;

/// Name of the metadata file.
pub const IMAGE_FILE: &str = "image.json";
/// Name of the page file.
pub const PAGES_FILE: &str = "pages.img";
/// The `format` field of `image.json`.
// The crate was om-engine when the format was named; images of every version carry it.
pub const FORMAT: &str = "om-engine process image";

/// Writing or reading a checkpoint directory failed.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// File system error on a path.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `image.json` is not a valid image.
    #[error("{path}: not a valid image: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Page data could not be read.
    #[error(transparent)]
    Pages(#[from] PageError),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    image: ProcessImage,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `image` and its pages (read from `memory`) into `dir`, which is created if
/// needed. `progress` is called with (bytes written, bytes total). Both files are synced
/// before this returns, so a complete return means a complete checkpoint.
pub fn write(
    dir: &Path,
    image: &ProcessImage,
    memory: &mut dyn PageSource,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let pages_path = dir.join(PAGES_FILE);
    let f = File::create(&pages_path).map_err(io(&pages_path))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let total = image.page_bytes();
    let mut done = 0;
    let mut buf = vec![0u8; 4 << 20];
    for r in &image.pages {
        let mut addr = r.addr;
        while addr < r.end() {
            let n = (r.end() - addr).min(buf.len() as u64) as usize;
            memory.read(addr, &mut buf[..n])?;
            w.write_all(&buf[..n]).map_err(io(&pages_path))?;
            addr += n as u64;
            done += n as u64;
            progress(done, total);
        }
    }
    let f = w
        .into_inner()
        .map_err(|e| io(&pages_path)(e.into_error()))?;
    f.sync_all().map_err(io(&pages_path))?;
    let image_path = dir.join(IMAGE_FILE);
    let env = Envelope {
        format: FORMAT.into(),
        version: IMAGE_VERSION,
        image: image.clone(),
    };
    let text = serde_json::to_vec_pretty(&env).map_err(|e| CheckpointError::Invalid {
        path: image_path.clone(),
        why: e.to_string(),
    })?;
    let mut f = File::create(&image_path).map_err(io(&image_path))?;
    f.write_all(&text).map_err(io(&image_path))?;
    f.sync_all().map_err(io(&image_path))?;
    Ok(())
}

/// Reads the image in `dir` and opens its page file.
pub fn read(dir: &Path) -> Result<(ProcessImage, ImagePages), CheckpointError> {
    let image_path = dir.join(IMAGE_FILE);
    let text = std::fs::read(&image_path).map_err(io(&image_path))?;
    let env: Envelope = serde_json::from_slice(&text).map_err(|e| CheckpointError::Invalid {
        path: image_path.clone(),
        why: e.to_string(),
    })?;
    if env.format != FORMAT {
        return Err(CheckpointError::Invalid {
            path: image_path,
            why: format!("format is {:?}, expected {FORMAT:?}", env.format),
        });
    }
    if !READS_VERSIONS.contains(&env.version) || env.image.version != env.version {
        return Err(CheckpointError::Invalid {
            path: image_path,
            why: format!(
                "version {} (this build reads versions {} to {})",
                env.version,
                READS_VERSIONS.start(),
                READS_VERSIONS.end()
            ),
        });
    }
    for r in &env.image.pages {
        if r.addr % PAGE_SIZE != 0 || r.pages == 0 {
            return Err(CheckpointError::Invalid {
                path: image_path,
                why: format!("bad page run at {:#x}", r.addr),
            });
        }
    }
    let pages = ImagePages::open(&dir.join(PAGES_FILE), &env.image.pages)?;
    Ok((env.image, pages))
}
