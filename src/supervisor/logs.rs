//! A container's output file, rotated by size: NAME.log, NAME.log.1, ...

use crate::unit::LoggingConfig;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct LogSink {
    path: PathBuf,
    config: LoggingConfig,
    file: Option<File>,
    size: u64,
}

impl LogSink {
    pub fn new(path: PathBuf, config: LoggingConfig) -> Self {
        LogSink {
            path,
            config,
            file: None,
            size: 0,
        }
    }

    pub fn reconfigure(&mut self, config: LoggingConfig) {
        self.config = config;
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.file.is_none() {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.size = file.metadata()?.len();
                self.file = Some(file);
            }
            let room = self.config.max_size.saturating_sub(self.size);
            if room == 0 {
                self.rotate()?;
                continue;
            }
            let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            if let Some(file) = self.file.as_mut() {
                file.write_all(&data[..take])?;
            }
            self.size = self.size.saturating_add(take as u64);
            data = &data[take..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        self.size = 0;
        let files = rotated_files(&self.path, self.config.max_files);
        if files.len() == 1 {
            return fs::remove_file(&self.path).or_else(ignore_missing);
        }
        // files is oldest first: shift each one a step older.
        for pair in files.windows(2) {
            fs::rename(&pair[1], &pair[0]).or_else(ignore_missing)?;
        }
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The paths a unit's log may occupy, oldest first, current last.
pub fn rotated_files(path: &Path, max_files: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..max_files.max(1))
        .rev()
        .map(|i| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{i}"));
            PathBuf::from(name)
        })
        .collect();
    files.push(path.to_path_buf());
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("supd-logs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        let mut sink = LogSink::new(
            path.clone(),
            LoggingConfig {
                max_size: 10,
                max_files: 3,
                ..Default::default()
            },
        );
        for chunk in ["0123456789", "abcdefghij", "KLMNO", "PQRSTUVWXYZ"] {
            sink.write(chunk.as_bytes()).unwrap();
        }
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        let files = rotated_files(&path, 3);
        let contents: Vec<String> = files.into_iter().map(read).collect();
        assert_eq!(contents, ["abcdefghij", "KLMNOPQRST", "UVWXYZ"]);
        assert!(!dir.join("a.log.3").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
