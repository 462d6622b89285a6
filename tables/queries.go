package tables

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// queries returns ready-to-run query texts for DuckDB, Spark and Trino.
// They name the store's endpoint and the catalog database but never a
// secret: credentials appear as <placeholders>, since Describe is served
// over HTTP.
func (p *Publisher) queries(stream string, info Info) map[string]string {
	return map[string]string{
		"duckdb": p.duckdbQuery(info),
		"spark":  p.sparkQuery(stream),
		"trino":  p.trinoQuery(stream, info),
	}
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// duckdbQuery reads the current snapshot through DuckDB's iceberg
// extension, straight from the metadata file (no catalog needed).
func (p *Publisher) duckdbQuery(info Info) string {
	var b strings.Builder
	b.WriteString("INSTALL iceberg; LOAD iceberg;\n")
	if p.store.Scheme == "s3" {
		b.WriteString("CREATE SECRET tierd_s3 (TYPE s3, KEY_ID '<access key>', SECRET '<secret key>', REGION " + sqlString(p.store.Region))
		if ep := p.store.Endpoint; ep != "" {
			host := strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://")
			fmt.Fprintf(&b, ", ENDPOINT %s, URL_STYLE 'path', USE_SSL %t", sqlString(host), strings.HasPrefix(ep, "https://"))
		}
		b.WriteString(");\n")
	}
	fmt.Fprintf(&b, "SELECT * FROM iceberg_scan(%s) ORDER BY \"offset\" LIMIT 100;", sqlString(info.MetadataLocation))
	return b.String()
}

// sparkQuery mounts the catalog as "tierd" in spark-sql (Iceberg's Spark
// runtime; S3FileIO for s3:// data files) and selects from the table.
func (p *Publisher) sparkQuery(stream string) string {
	warehouse := p.warehouse()
	packages := "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.9.2,org.apache.iceberg:iceberg-aws-bundle:1.9.2"
	var hadoopConf []string
	if p.opts.CatalogDSN == "" && p.store.Scheme == "s3" {
		// Spark's Hadoop catalog lists and renames through a Hadoop file
		// system, which knows S3 as s3a; the files themselves are read by
		// S3FileIO, which takes s3:// and s3a:// alike.
		warehouse = "s3a://" + strings.TrimPrefix(warehouse, "s3://")
		packages += ",org.apache.hadoop:hadoop-aws:3.3.4"
		hadoopConf = append(hadoopConf, "spark.hadoop.fs.s3a.path.style.access=true")
		if p.store.Endpoint != "" {
			hadoopConf = append(hadoopConf, "spark.hadoop.fs.s3a.endpoint="+p.store.Endpoint)
		}
	}
	conf := []string{
		"spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
		"spark.sql.catalog." + catalogName + "=org.apache.iceberg.spark.SparkCatalog",
		"spark.sql.catalog." + catalogName + ".warehouse=" + warehouse,
	}
	conf = append(conf, hadoopConf...)
	if p.opts.CatalogDSN == "" {
		conf = append(conf, "spark.sql.catalog."+catalogName+".type=hadoop")
	} else {
		jdbc, user := jdbcURL(p.opts.CatalogDSN)
		conf = append(conf,
			"spark.sql.catalog."+catalogName+".type=jdbc",
			"spark.sql.catalog."+catalogName+".uri="+jdbc,
			"spark.sql.catalog."+catalogName+".jdbc.user="+user,
			"spark.sql.catalog."+catalogName+".jdbc.password=<password>")
	}
	if p.store.Scheme == "s3" {
		conf = append(conf,
			"spark.sql.catalog."+catalogName+".io-impl=org.apache.iceberg.aws.s3.S3FileIO",
			"spark.sql.catalog."+catalogName+".client.region="+p.store.Region)
		if p.store.Endpoint != "" {
			conf = append(conf,
				"spark.sql.catalog."+catalogName+".s3.endpoint="+p.store.Endpoint,
				"spark.sql.catalog."+catalogName+".s3.path-style-access=true")
		}
	}
	var b strings.Builder
	b.WriteString("spark-sql --packages " + packages)
	for _, c := range conf {
		b.WriteString(" \\\n  --conf " + c)
	}
	fmt.Fprintf(&b, " \\\n  -e 'SELECT * FROM %s.%s.`%s` ORDER BY `offset` LIMIT 100'", catalogName, p.opts.Namespace, stream)
	return b.String()
}

// trinoQuery: with the PostgreSQL catalog, Trino's Iceberg connector reads
// it directly (iceberg.catalog.type=jdbc). Trino has no Hadoop catalog, so
// a file-catalog table is registered into an Iceberg catalog of the
// operator's by its location and current metadata file.
func (p *Publisher) trinoQuery(stream string, info Info) string {
	var b strings.Builder
	if p.opts.CatalogDSN != "" {
		jdbc, user := jdbcURL(p.opts.CatalogDSN)
		b.WriteString("-- etc/catalog/" + catalogName + ".properties:\n")
		b.WriteString("--   connector.name=iceberg\n--   iceberg.catalog.type=jdbc\n")
		b.WriteString("--   iceberg.jdbc-catalog.driver-class=org.postgresql.Driver\n")
		b.WriteString("--   iceberg.jdbc-catalog.connection-url=" + jdbc + "\n")
		b.WriteString("--   iceberg.jdbc-catalog.connection-user=" + user + "\n--   iceberg.jdbc-catalog.connection-password=<password>\n")
		b.WriteString("--   iceberg.jdbc-catalog.catalog-name=" + catalogName + "\n")
		b.WriteString("--   iceberg.jdbc-catalog.default-warehouse-dir=" + p.warehouse() + "\n")
		p.trinoS3(&b)
		fmt.Fprintf(&b, "SELECT * FROM %s.%s.%q ORDER BY \"offset\" LIMIT 100;", catalogName, p.opts.Namespace, stream)
		return b.String()
	}
	b.WriteString("-- in an Iceberg catalog of yours (here: iceberg) with register_table enabled:\n")
	p.trinoS3(&b)
	fmt.Fprintf(&b, "CALL iceberg.system.register_table(schema_name => %s, table_name => %s, table_location => %s, metadata_file_name => %s);\n",
		sqlString(p.opts.Namespace), sqlString(stream), sqlString(info.Location), sqlString(path.Base(info.MetadataLocation)))
	fmt.Fprintf(&b, "SELECT * FROM iceberg.%s.%q ORDER BY \"offset\" LIMIT 100;", p.opts.Namespace, stream)
	return b.String()
}

func (p *Publisher) trinoS3(b *strings.Builder) {
	if p.store.Scheme != "s3" {
		return
	}
	b.WriteString("--   fs.native-s3.enabled=true\n--   s3.region=" + p.store.Region + "\n")
	if p.store.Endpoint != "" {
		b.WriteString("--   s3.endpoint=" + p.store.Endpoint + "\n--   s3.path-style-access=true\n")
	}
	b.WriteString("--   s3.aws-access-key=<access key>\n--   s3.aws-secret-key=<secret key>\n")
}

// jdbcURL turns a PostgreSQL DSN into a JDBC URL and user, without the
// password.
func jdbcURL(dsn string) (url, user string) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "jdbc:postgresql://<host>:<port>/<database>", "<user>"
	}
	return "jdbc:postgresql://" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database, cfg.User
}
