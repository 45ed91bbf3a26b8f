// SQLite results database: schema, writes in single transactions, reads for reports.
#include "experiments/store/results_db.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include <sqlite3.h>
#include <unistd.h>

#include "experiments/store/results_json.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

constexpr int kSchemaVersion = 4;

// Version 1 (the schema of every database written before version 2); a new database is created
// as version 1 and migrated like an old one, so the migration runs on every database.
const char* kSchemaV1 = R"SQL(
CREATE TABLE IF NOT EXISTS experiment (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  config TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  git_revision TEXT,
  torch_version TEXT,
  cuda TEXT,
  device TEXT,
  shard TEXT,
  started TEXT,
  finished TEXT,
  status TEXT
);
CREATE TABLE IF NOT EXISTS cell (
  id INTEGER PRIMARY KEY,
  cell_key TEXT NOT NULL UNIQUE,
  position INTEGER,
  method TEXT NOT NULL,
  settings TEXT NOT NULL,
  settings_hash TEXT NOT NULL,
  axes TEXT,
  dataset TEXT NOT NULL,
  dataset_settings TEXT,
  mask TEXT NOT NULL,
  mask_settings TEXT,
  model TEXT NOT NULL,
  model_settings TEXT,
  seed INTEGER NOT NULL,
  mask_seed INTEGER
);
CREATE TABLE IF NOT EXISTS sample (
  id INTEGER PRIMARY KEY,
  cell_id INTEGER NOT NULL REFERENCES cell(id),
  image_index INTEGER NOT NULL,
  image_id TEXT,
  sample_index INTEGER NOT NULL,
  run_id INTEGER REFERENCES experiment(id),
  seconds REAL,
  forwards INTEGER,
  backwards INTEGER,
  peak_memory INTEGER,
  status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
  error TEXT,
  h5_file TEXT,
  sample_path TEXT,
  reference_path TEXT,
  mask_path TEXT,
  UNIQUE (cell_id, image_index, sample_index)
);
CREATE TABLE IF NOT EXISTS score (
  sample_id INTEGER NOT NULL REFERENCES sample(id) ON DELETE CASCADE,
  metric TEXT NOT NULL,
  value REAL,
  higher_is_better INTEGER NOT NULL,
  PRIMARY KEY (sample_id, metric)
);
CREATE INDEX IF NOT EXISTS sample_by_cell ON sample(cell_id, status);
CREATE INDEX IF NOT EXISTS score_by_metric ON score(metric);
CREATE VIEW IF NOT EXISTS cell_metric AS
  SELECT c.id AS cell_id, c.method, c.axes, c.settings_hash, c.dataset, c.mask, c.model, c.seed,
         s.metric, AVG(s.value) AS mean, COUNT(s.value) AS count,
         CASE WHEN COUNT(s.value) > 1
              THEN (SUM(s.value * s.value) - COUNT(s.value) * AVG(s.value) * AVG(s.value))
                   / (COUNT(s.value) - 1) END AS variance,
         MIN(s.value) AS min, MAX(s.value) AS max
  FROM score s JOIN sample p ON p.id = s.sample_id JOIN cell c ON c.id = p.cell_id
  WHERE p.status = 'ok'
  GROUP BY c.id, s.metric;
CREATE VIEW IF NOT EXISTS image_best AS
  SELECT p.cell_id, p.image_index, s.metric,
         CASE WHEN MAX(s.higher_is_better) = 1 THEN MAX(s.value) ELSE MIN(s.value) END AS best,
         COUNT(s.value) AS samples
  FROM score s JOIN sample p ON p.id = s.sample_id
  WHERE p.status = 'ok'
  GROUP BY p.cell_id, p.image_index, s.metric;
CREATE VIEW IF NOT EXISTS cell_best AS
  SELECT cell_id, metric, AVG(best) AS best_mean, COUNT(best) AS images
  FROM image_best GROUP BY cell_id, metric;
)SQL";

// Version 2: typed JSON beside every settings text, the run's environment in columns, units in
// names (`peak_memory_bytes`), `axes` renamed `variant` (it shadowed pandas' DataFrame.axes),
// and a tidy `score_long` view. The JSON columns are filled by fill_json() after this script.
const char* kMigrateV1ToV2 = R"SQL(
DROP VIEW IF EXISTS cell_best;
DROP VIEW IF EXISTS image_best;
DROP VIEW IF EXISTS cell_metric;
ALTER TABLE cell RENAME COLUMN axes TO variant;
ALTER TABLE cell ADD COLUMN variant_json TEXT;
ALTER TABLE cell ADD COLUMN settings_json TEXT;
ALTER TABLE cell ADD COLUMN dataset_settings_json TEXT;
ALTER TABLE cell ADD COLUMN mask_settings_json TEXT;
ALTER TABLE cell ADD COLUMN model_settings_json TEXT;
ALTER TABLE sample RENAME COLUMN peak_memory TO peak_memory_bytes;
ALTER TABLE experiment ADD COLUMN config_json TEXT;
ALTER TABLE experiment ADD COLUMN device_type TEXT;
ALTER TABLE experiment ADD COLUMN threads INTEGER;
ALTER TABLE experiment ADD COLUMN host TEXT;
ALTER TABLE experiment ADD COLUMN slurm_job_id TEXT;
ALTER TABLE experiment ADD COLUMN slurm_array_job_id TEXT;
ALTER TABLE experiment ADD COLUMN slurm_array_task_id TEXT;
ALTER TABLE experiment ADD COLUMN command_line TEXT;
ALTER TABLE experiment ADD COLUMN model_description TEXT;
CREATE VIEW cell_metric AS
  SELECT c.id AS cell_id, c.method, c.variant, c.variant_json, c.settings_hash, c.dataset, c.mask,
         c.model, c.seed, s.metric, AVG(s.value) AS mean, COUNT(s.value) AS count,
         CASE WHEN COUNT(s.value) > 1
              THEN (SUM(s.value * s.value) - COUNT(s.value) * AVG(s.value) * AVG(s.value))
                   / (COUNT(s.value) - 1) END AS variance,
         MIN(s.value) AS min, MAX(s.value) AS max
  FROM score s JOIN sample p ON p.id = s.sample_id JOIN cell c ON c.id = p.cell_id
  WHERE p.status = 'ok'
  GROUP BY c.id, s.metric;
CREATE VIEW image_best AS
  SELECT p.cell_id, p.image_index, s.metric,
         CASE WHEN MAX(s.higher_is_better) = 1 THEN MAX(s.value) ELSE MIN(s.value) END AS best,
         COUNT(s.value) AS samples
  FROM score s JOIN sample p ON p.id = s.sample_id
  WHERE p.status = 'ok'
  GROUP BY p.cell_id, p.image_index, s.metric;
CREATE VIEW cell_best AS
  SELECT cell_id, metric, AVG(best) AS best_mean, COUNT(best) AS images
  FROM image_best GROUP BY cell_id, metric;
CREATE VIEW score_long AS
  SELECT c.id AS cell_id, c.cell_key, c.position, c.method, c.variant, c.variant_json,
         c.settings_json, c.dataset, c.mask, c.model, c.seed, p.id AS sample_id, p.image_index,
         p.image_id, p.sample_index, p.run_id, p.status, p.seconds, p.forwards, p.backwards,
         p.peak_memory_bytes, s.metric, s.value, s.higher_is_better
  FROM score s JOIN sample p ON p.id = s.sample_id JOIN cell c ON c.id = p.cell_id;
)SQL";

// Version 3: each sample's input identity (the resume's check that a stored sample still belongs
// to its input) and one fingerprint per (dataset, mask) input set.
const char* kMigrateV2ToV3 = R"SQL(
ALTER TABLE sample ADD COLUMN image_sha256 TEXT;
ALTER TABLE sample ADD COLUMN mask_sha256 TEXT;
CREATE TABLE IF NOT EXISTS input_set (
  dataset TEXT NOT NULL,
  dataset_key TEXT NOT NULL,
  mask TEXT NOT NULL,
  mask_key TEXT NOT NULL,
  images INTEGER NOT NULL,
  unreadable INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  run_id INTEGER REFERENCES experiment(id),
  PRIMARY KEY (dataset_key, mask_key)
);
)SQL";

// Version 4: per sample, the gradient steps whose loss or gradient was non-finite
// (methods/gradients.h); NULL for methods without gradients and for rows stored before.
const char* kMigrateV3ToV4 = "ALTER TABLE sample ADD COLUMN nonfinite_grads INTEGER";

/// SQLite's message, with the operating system's reason when there is one ("disk I/O error
/// (File too large)").
std::string sqlite_error(sqlite3* db) {
  std::string msg = sqlite3_errmsg(db);
  const int sys = sqlite3_system_errno(db);
  if (sys != 0) msg += std::string(" (") + std::strerror(sys) + ")";
  return msg;
}

/// A prepared statement with typed binds and column reads.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql, const std::string& file) : db_(db), file_(file) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
      throw InputError("database '" + file + "': " + sqlite3_errmsg(db) + " in: " + sql);
    }
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  /// A row id, NULL when 0 (no row).
  Stmt& bind_id(int i, int64_t v) {
    check(v == 0 ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  /// A count, NULL when negative (not counted).
  Stmt& bind_count(int i, int64_t v) {
    check(v < 0 ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind_double(int i, double v) {
    check(std::isnan(v) ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_double(stmt_, i, v));
    return *this;
  }
  /// Steps once; true when a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw InputError("database '" + file_ + "': " + sqlite_error(db_));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t i64(int c) const { return sqlite3_column_int64(stmt_, c); }
  /// A count, -1 when NULL (not counted).
  int64_t count(int c) const {
    return sqlite3_column_type(stmt_, c) == SQLITE_NULL ? -1 : sqlite3_column_int64(stmt_, c);
  }
  double f64(int c) const {
    return sqlite3_column_type(stmt_, c) == SQLITE_NULL ? std::numeric_limits<double>::quiet_NaN()
                                                        : sqlite3_column_double(stmt_, c);
  }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(stmt_, c);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw InputError("database '" + file_ + "': " + sqlite_error(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string file_;
};

/// One column of a table and the field of record R it holds (text or integer): the column lists
/// of a table's SELECT and INSERT and its row reads and binds all come from one such list.
template <class R>
struct Column {
  const char* name;
  std::string R::*text = nullptr;
  int64_t R::*integer = nullptr;
};

template <class R>
Column<R> text_column(const char* name, std::string R::*field) {
  return {name, field, nullptr};
}
template <class R>
Column<R> int_column(const char* name, int64_t R::*field) {
  return {name, nullptr, field};
}

/// "a, b, c".
template <class R>
std::string column_names(const std::vector<Column<R>>& columns) {
  std::string out;
  for (const auto& c : columns) out += (out.empty() ? "" : ", ") + std::string(c.name);
  return out;
}

/// Columns 0.. of the row `q` stands on, read in the order of `columns`.
template <class R>
R read_columns(const Stmt& q, const std::vector<Column<R>>& columns) {
  R r;
  for (size_t i = 0; i < columns.size(); ++i) {
    const int c = static_cast<int>(i);
    if (columns[i].text) r.*columns[i].text = q.text(c);
    if (columns[i].integer) r.*columns[i].integer = q.i64(c);
  }
  return r;
}

/// Binds `r`'s fields to parameters first, first + 1, ...; returns the next parameter's index.
template <class R>
int bind_columns(Stmt& q, const std::vector<Column<R>>& columns, const R& r, int first = 1) {
  for (const auto& c : columns) {
    if (c.text) q.bind(first++, r.*c.text);
    if (c.integer) q.bind(first++, r.*c.integer);
  }
  return first;
}

/// "?,?,?" for n parameters.
std::string placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += i ? ",?" : "?";
  return out;
}

/// The experiment table's columns as RunRecord holds them (config_json, derived, is not read).
const std::vector<Column<RunRecord>>& run_columns() {
  using R = RunRecord;
  static const std::vector<Column<R>> columns = {
      text_column("name", &R::name),
      text_column("config", &R::config),
      text_column("config_hash", &R::config_hash),
      text_column("git_revision", &R::git_revision),
      text_column("torch_version", &R::torch_version),
      text_column("cuda", &R::cuda),
      text_column("device", &R::device),
      text_column("shard", &R::shard),
      text_column("started", &R::started),
      text_column("finished", &R::finished),
      text_column("status", &R::status),
      text_column("device_type", &R::device_type),
      int_column("threads", &R::threads),
      text_column("host", &R::host),
      text_column("slurm_job_id", &R::slurm_job_id),
      text_column("slurm_array_job_id", &R::slurm_array_job_id),
      text_column("slurm_array_task_id", &R::slurm_array_task_id),
      text_column("command_line", &R::command_line),
      text_column("model_description", &R::model_description),
  };
  return columns;
}

/// The cell table's columns as CellRecord holds them (the *_json columns, derived, are not read).
const std::vector<Column<CellRecord>>& cell_columns() {
  using R = CellRecord;
  static const std::vector<Column<R>> columns = {
      text_column("cell_key", &R::key),
      int_column("position", &R::position),
      text_column("method", &R::method),
      text_column("settings", &R::settings),
      text_column("settings_hash", &R::settings_hash),
      text_column("variant", &R::axes),
      text_column("dataset", &R::dataset),
      text_column("dataset_settings", &R::dataset_settings),
      text_column("mask", &R::mask),
      text_column("mask_settings", &R::mask_settings),
      text_column("model", &R::model),
      text_column("model_settings", &R::model_settings),
      int_column("seed", &R::seed),
      int_column("mask_seed", &R::mask_seed),
  };
  return columns;
}

const char* kSampleColumns =
    "s.id, s.cell_id, s.image_index, s.image_id, s.sample_index, s.run_id, s.seconds, s.forwards, "
    "s.backwards, s.peak_memory_bytes, s.status, s.error, s.h5_file, s.sample_path, "
    "s.reference_path, s.mask_path, s.image_sha256, s.mask_sha256, s.nonfinite_grads";

SampleRecord read_sample(const Stmt& q) {
  SampleRecord r;
  r.id = q.i64(0);
  r.cell_id = q.i64(1);
  r.image_index = q.i64(2);
  r.image_id = q.text(3);
  r.sample_index = q.i64(4);
  r.run_id = q.i64(5);
  r.seconds = q.f64(6);
  r.forwards = q.i64(7);
  r.backwards = q.i64(8);
  r.peak_memory = q.i64(9);
  r.status = q.text(10);
  r.error = q.text(11);
  r.h5_file = q.text(12);
  r.sample_path = q.text(13);
  r.reference_path = q.text(14);
  r.mask_path = q.text(15);
  r.image_sha256 = q.text(16);
  r.mask_sha256 = q.text(17);
  r.nonfinite_grads = q.count(18);
  return r;
}

}  // namespace

bool holds_results_tables(const std::string& path) {
  sqlite3* db = nullptr;
  bool found = false;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    const char* sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiment'";
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK)
      found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return found;
}

namespace {

/// Whether `path` and its folder can be written (WAL needs its -shm file beside the database).
bool writable_here(const std::string& path) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return ::access(path.c_str(), W_OK) == 0 && ::access(dir.empty() ? "." : dir.c_str(), W_OK) == 0;
}

/// An SQLite URI opening `path` immutable: read-only, no locks, no -shm (a read-only archive).
std::string immutable_uri(const std::string& path) {
  std::string uri = "file:";
  for (unsigned char c : std::filesystem::absolute(path).string()) {
    if (c == '?' || c == '#' || c == '%' || c < 0x20) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      uri += hex;
    } else {
      uri += static_cast<char>(c);
    }
  }
  return uri + "?immutable=1";
}

}  // namespace

ResultsDb::ResultsDb(const std::string& path, bool create) : path_(path) {
  std::error_code ec;
  if (!create && !std::filesystem::is_regular_file(path, ec)) {
    throw InputError("results database '" + path + "': no such file");
  }
  // A database in a folder this process cannot write (a read-only archive) is read immutable:
  // WAL mode would need its -shm file. Writes not yet checkpointed (a -wal file) cannot be read
  // so, and are an error rather than silently missing rows.
  const bool read_only = !create && !writable_here(path);
  if (read_only && std::filesystem::file_size(path + "-wal", ec) > 0 && !ec) {
    throw InputError("results database '" + path + "': its folder is read-only and " + path +
                     "-wal holds writes not yet in the database; copy the folder somewhere "
                     "writable to read it");
  }
  const std::string target = read_only ? immutable_uri(path) : path;
  const int flags = read_only ? SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
                              : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(target.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw InputError("results database '" + path + "': cannot open: " + msg);
  }
  sqlite3_busy_timeout(db_, 30000);
  try {
    const std::string version = query_text("PRAGMA user_version");
    const std::string tables =
        query_text("SELECT COUNT(*) FROM sqlite_master WHERE name = 'experiment'");
    if (tables == "0" && !create) {
      if (query_text("SELECT COUNT(*) FROM sqlite_master") == "0") {
        throw InputError("results database '" + path +
                         "' is empty (a merge or run stopped before its first write): rerun "
                         "`copaint merge` on its folder, or the run, to write it");
      }
      throw InputError("'" + path + "' is not a copaint results database (no experiment table)");
    }
    if (std::stoi(version.empty() ? "0" : version) > kSchemaVersion) {
      throw InputError("results database '" + path + "' has schema version " + version +
                       ", newer than this program's " + std::to_string(kSchemaVersion));
    }
    if (read_only) {
      if (std::stoi(version.empty() ? "0" : version) < 2) {
        throw InputError("results database '" + path + "' has schema version " + version +
                         ", which needs a migration, and its folder is read-only; copy the "
                         "folder somewhere writable to read it");
      }
      return;
    }
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA foreign_keys = ON");
    if (create && tables == "0") {
      exec(std::string("BEGIN IMMEDIATE;") + kSchemaV1 + "PRAGMA user_version = 1; COMMIT;");
    }
    migrate();
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

void ResultsDb::migrate() {
  for (int step = schema_version(); step < kSchemaVersion; step = schema_version()) {
    exec("BEGIN IMMEDIATE");
    try {
      // Another process may have migrated it between the check and the lock.
      const int now = schema_version();
      if (now < 2) {
        migrate_v1_to_v2();
        exec("PRAGMA user_version = 2");
      } else if (now < 3) {
        exec(kMigrateV2ToV3);
        exec("PRAGMA user_version = 3");
      } else if (now < 4) {
        exec(kMigrateV3ToV4);
        exec("PRAGMA user_version = 4");
      }
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    exec("COMMIT");
  }
}

void ResultsDb::migrate_v1_to_v2() {
  exec(kMigrateV1ToV2);
  {
    Stmt q(db_,
           "SELECT id, variant, settings, dataset_settings, mask_settings, model_settings "
           "FROM cell",
           path_);
    Stmt up(db_,
            "UPDATE cell SET variant_json = ?, settings_json = ?, dataset_settings_json = ?, "
            "mask_settings_json = ?, model_settings_json = ? WHERE id = ?",
            path_);
    while (q.step()) {
      up.reset();
      up.bind(1, variant_label_to_json(q.text(1))).bind(2, settings_text_to_json(q.text(2)));
      up.bind(3, settings_text_to_json(q.text(3))).bind(4, settings_text_to_json(q.text(4)));
      up.bind(5, settings_text_to_json(q.text(5))).bind(6, q.i64(0));
      up.step();
    }
  }
  Stmt q(db_, "SELECT id, config FROM experiment", path_);
  Stmt up(db_, "UPDATE experiment SET config_json = ? WHERE id = ?", path_);
  while (q.step()) {
    up.reset();
    up.bind(1, settings_text_to_json(q.text(1), true)).bind(2, q.i64(0));
    up.step();
  }
}

int ResultsDb::schema_version() const {
  const std::string v = query_text("PRAGMA user_version");
  return std::stoi(v.empty() ? "0" : v);
}

ResultsDb::~ResultsDb() {
  if (db_) sqlite3_close(db_);
}

void ResultsDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    if (sqlite3_system_errno(db_) != 0)
      msg += std::string(" (") + std::strerror(sqlite3_system_errno(db_)) + ")";
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw InputError("results database '" + path_ + "': " + msg);
  }
}

std::string ResultsDb::query_text(const std::string& sql) const {
  Stmt q(db_, sql, path_);
  return q.step() ? q.text(0) : std::string();
}

int64_t ResultsDb::add_run(const RunRecord& r) {
  const auto& columns = run_columns();
  Stmt q(db_,
         "INSERT INTO experiment (" + column_names(columns) + ", config_json) VALUES (" +
             placeholders(columns.size() + 1) + ")",
         path_);
  q.bind(bind_columns(q, columns, r), settings_text_to_json(r.config, true));
  q.step();
  return sqlite3_last_insert_rowid(db_);
}

void ResultsDb::finish_run(int64_t run_id, const std::string& finished, const std::string& status) {
  Stmt q(db_, "UPDATE experiment SET finished = ?, status = ? WHERE id = ?", path_);
  q.bind(1, finished).bind(2, status).bind(3, run_id);
  q.step();
}

int64_t ResultsDb::ensure_cell(const CellRecord& c) {
  {
    Stmt q(db_, "SELECT id FROM cell WHERE cell_key = ?", path_);
    q.bind(1, c.key);
    if (q.step()) return q.i64(0);
  }
  const auto& columns = cell_columns();
  Stmt q(db_,
         "INSERT INTO cell (" + column_names(columns) +
             ", variant_json, settings_json, dataset_settings_json, mask_settings_json, "
             "model_settings_json) VALUES (" +
             placeholders(columns.size() + 5) + ")",
         path_);
  int next = bind_columns(q, columns, c);
  // The JSON is derived from the texts (never stored separately), so merged and migrated cells
  // agree with new ones.
  q.bind(next++, variant_label_to_json(c.axes)).bind(next++, settings_text_to_json(c.settings));
  q.bind(next++, settings_text_to_json(c.dataset_settings));
  q.bind(next++, settings_text_to_json(c.mask_settings));
  q.bind(next++, settings_text_to_json(c.model_settings));
  q.step();
  return sqlite3_last_insert_rowid(db_);
}

std::map<std::pair<int64_t, int64_t>, std::string> ResultsDb::sample_status(int64_t cell_id) const {
  std::map<std::pair<int64_t, int64_t>, std::string> out;
  Stmt q(db_, "SELECT image_index, sample_index, status FROM sample WHERE cell_id = ?", path_);
  q.bind(1, cell_id);
  while (q.step()) out[{q.i64(0), q.i64(1)}] = q.text(2);
  return out;
}

std::map<std::pair<int64_t, int64_t>, SampleRecord> ResultsDb::sample_rows(int64_t cell_id) const {
  std::map<std::pair<int64_t, int64_t>, SampleRecord> out;
  Stmt q(db_, std::string("SELECT ") + kSampleColumns + " FROM sample s WHERE s.cell_id = ?",
         path_);
  q.bind(1, cell_id);
  std::map<int64_t, std::pair<int64_t, int64_t>> at;
  while (q.step()) {
    SampleRecord r = read_sample(q);
    at[r.id] = {r.image_index, r.sample_index};
    out[{r.image_index, r.sample_index}] = std::move(r);
  }
  Stmt sc(db_,
          "SELECT c.sample_id, c.metric, c.value, c.higher_is_better FROM score c "
          "JOIN sample s ON s.id = c.sample_id WHERE s.cell_id = ? ORDER BY c.sample_id, c.metric",
          path_);
  sc.bind(1, cell_id);
  while (sc.step()) {
    auto it = at.find(sc.i64(0));
    if (it != at.end()) out[it->second].scores.push_back({sc.text(1), sc.f64(2), sc.i64(3) != 0});
  }
  return out;
}

void ResultsDb::set_input_hashes(const std::vector<SampleRecord>& rows) {
  if (rows.empty()) return;
  exec("BEGIN IMMEDIATE");
  try {
    Stmt q(db_, "UPDATE sample SET image_sha256 = ?, mask_sha256 = ? WHERE id = ?", path_);
    for (const auto& r : rows) {
      q.reset();
      q.bind(1, r.image_sha256).bind(2, r.mask_sha256).bind(3, r.id);
      q.step();
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  exec("COMMIT");
}

void ResultsDb::add_scores(const std::vector<std::pair<int64_t, ScoreRecord>>& scores) {
  if (scores.empty()) return;
  exec("BEGIN IMMEDIATE");
  try {
    Stmt q(db_,
           "INSERT OR REPLACE INTO score (sample_id, metric, value, higher_is_better) "
           "VALUES (?,?,?,?)",
           path_);
    for (const auto& [id, sc] : scores) {
      q.reset();
      q.bind(1, id).bind(2, sc.metric).bind_double(3, sc.value);
      q.bind(4, static_cast<int64_t>(sc.higher_is_better ? 1 : 0));
      q.step();
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  exec("COMMIT");
}

void ResultsDb::write_input_set(const InputSetRecord& r) {
  Stmt q(db_,
         "INSERT OR REPLACE INTO input_set (dataset, dataset_key, mask, mask_key, images, "
         "unreadable, fingerprint, run_id) VALUES (?,?,?,?,?,?,?,?)",
         path_);
  q.bind(1, r.dataset).bind(2, r.dataset_key).bind(3, r.mask).bind(4, r.mask_key);
  q.bind(5, r.images).bind(6, r.unreadable).bind(7, r.fingerprint).bind_id(8, r.run_id);
  q.step();
}

std::vector<InputSetRecord> ResultsDb::input_sets() const {
  std::vector<InputSetRecord> out;
  Stmt q(db_,
         "SELECT dataset, dataset_key, mask, mask_key, images, unreadable, fingerprint, run_id "
         "FROM input_set ORDER BY dataset_key, mask_key",
         path_);
  while (q.step()) {
    out.push_back(
        {q.text(0), q.text(1), q.text(2), q.text(3), q.i64(4), q.i64(5), q.text(6), q.i64(7)});
  }
  return out;
}

void ResultsDb::write_samples(const std::vector<SampleRecord>& samples) {
  if (samples.empty()) return;
  exec("BEGIN IMMEDIATE");
  try {
    Stmt up(db_,
            "INSERT INTO sample (cell_id, image_index, image_id, sample_index, run_id, seconds, "
            "forwards, backwards, peak_memory_bytes, status, error, h5_file, sample_path, "
            "reference_path, mask_path, image_sha256, mask_sha256, nonfinite_grads) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (cell_id, image_index, sample_index) DO UPDATE SET "
            "image_id = excluded.image_id, run_id = excluded.run_id, seconds = excluded.seconds, "
            "forwards = excluded.forwards, backwards = excluded.backwards, "
            "peak_memory_bytes = excluded.peak_memory_bytes, status = excluded.status, "
            "error = excluded.error, h5_file = excluded.h5_file, "
            "sample_path = excluded.sample_path, reference_path = excluded.reference_path, "
            "mask_path = excluded.mask_path, image_sha256 = excluded.image_sha256, "
            "mask_sha256 = excluded.mask_sha256, nonfinite_grads = excluded.nonfinite_grads",
            path_);
    Stmt id(db_, "SELECT id FROM sample WHERE cell_id = ? AND image_index = ? AND sample_index = ?",
            path_);
    Stmt drop(db_, "DELETE FROM score WHERE sample_id = ?", path_);
    Stmt score(db_,
               "INSERT INTO score (sample_id, metric, value, higher_is_better) VALUES (?,?,?,?)",
               path_);
    for (const auto& s : samples) {
      up.reset();
      up.bind(1, s.cell_id).bind(2, s.image_index).bind(3, s.image_id).bind(4, s.sample_index);
      up.bind_id(5, s.run_id).bind_double(6, s.seconds).bind(7, s.forwards).bind(8, s.backwards);
      up.bind(9, s.peak_memory).bind(10, s.status).bind(11, s.error).bind(12, s.h5_file);
      up.bind(13, s.sample_path).bind(14, s.reference_path).bind(15, s.mask_path);
      up.bind(16, s.image_sha256).bind(17, s.mask_sha256).bind_count(18, s.nonfinite_grads);
      up.step();
      id.reset();
      id.bind(1, s.cell_id).bind(2, s.image_index).bind(3, s.sample_index);
      if (!id.step()) throw InputError("database '" + path_ + "': sample row vanished");
      const int64_t sample_id = id.i64(0);
      drop.reset();
      drop.bind(1, sample_id);
      drop.step();
      for (const auto& sc : s.scores) {
        score.reset();
        score.bind(1, sample_id).bind(2, sc.metric).bind_double(3, sc.value);
        score.bind(4, static_cast<int64_t>(sc.higher_is_better ? 1 : 0));
        score.step();
      }
    }
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  fault_point("sqlite: sample rows written, before commit");
  exec("COMMIT");
  fault_point("sqlite: sample rows committed");
}

std::vector<RunRecord> ResultsDb::runs() const {
  std::vector<RunRecord> out;
  Stmt q(db_, "SELECT " + column_names(run_columns()) + ", id FROM experiment ORDER BY id", path_);
  const int id = static_cast<int>(run_columns().size());
  while (q.step()) {
    out.push_back(read_columns(q, run_columns()));
    out.back().id = q.i64(id);
  }
  return out;
}

std::vector<CellRecord> ResultsDb::cells() const {
  std::vector<CellRecord> out;
  Stmt q(db_, "SELECT " + column_names(cell_columns()) + ", id FROM cell ORDER BY position, id",
         path_);
  const int id = static_cast<int>(cell_columns().size());
  while (q.step()) {
    out.push_back(read_columns(q, cell_columns()));
    out.back().id = q.i64(id);
  }
  return out;
}

std::vector<SampleRecord> ResultsDb::samples() const {
  std::vector<SampleRecord> out;
  std::map<int64_t, size_t> at;
  {
    Stmt q(db_,
           std::string("SELECT ") + kSampleColumns +
               " FROM sample s ORDER BY s.cell_id, s.image_index, s.sample_index",
           path_);
    while (q.step()) {
      out.push_back(read_sample(q));
      at[out.back().id] = out.size() - 1;
    }
  }
  Stmt q(db_,
         "SELECT sample_id, metric, value, higher_is_better FROM score ORDER BY sample_id, metric",
         path_);
  while (q.step()) {
    auto it = at.find(q.i64(0));
    if (it == at.end()) continue;
    out[it->second].scores.push_back({q.text(1), q.f64(2), q.i64(3) != 0});
  }
  return out;
}

SampleRecord ResultsDb::sample(int64_t id) const {
  Stmt q(db_, std::string("SELECT ") + kSampleColumns + " FROM sample s WHERE s.id = ?", path_);
  q.bind(1, id);
  if (!q.step()) {
    throw InputError("results database '" + path_ + "': no sample with id " + std::to_string(id));
  }
  SampleRecord r = read_sample(q);
  Stmt s(db_,
         "SELECT metric, value, higher_is_better FROM score WHERE sample_id = ? ORDER BY metric",
         path_);
  s.bind(1, id);
  while (s.step()) r.scores.push_back({s.text(0), s.f64(1), s.i64(2) != 0});
  return r;
}

std::string run_identity(const RunRecord& r) {
  return r.name + '\x1f' + r.config_hash + '\x1f' + r.shard + '\x1f' + r.started + '\x1f' + r.host +
         '\x1f' + r.command_line + '\x1f' + r.git_revision + '\x1f' + r.device;
}

}  // namespace copaint
