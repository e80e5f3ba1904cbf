"""Reading the ETL's input tables (Parquet or CSV folders, or Hive tables), checked against the input
contract, with every time column turned into epoch milliseconds."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from etl.contract import InputContractError

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql.types import DataType

    from etl.contract import ColumnMap

log = logging.getLogger("fraudgraph.etl")


def resolve_table(spark: SparkSession, source: str, name: str, columns: ColumnMap | None = None) -> SparkDataFrame:
    """A DataFrame for table ``name`` from a folder (Parquet or CSV) or ``hive:DB``, in the contract's
    column names (``etl.columns`` renames), with absent optional columns as nulls. Raises
    :class:`etl.contract.InputContractError` when the table breaks the contract."""
    from pyspark.sql import functions as F

    from etl.contract import CONTRACT, check_columns, renames, table_file

    if source.startswith("hive:"):
        df = spark.table(f"{source[len('hive:') :]}.{name}")
    else:
        path = table_file(source, name)
        if path is None:
            raise InputContractError([f"{name}: no {name}.parquet or {name}.csv under {source} (or its historical/)"])
        df = (
            spark.read.parquet(str(path))
            if path.suffix == ".parquet"
            else spark.read.option("header", True).option("escape", '"').csv(str(path))
        )
    problems = check_columns(name, {f.name: spark_family(f.dataType) for f in df.schema.fields}, columns)
    if problems:
        raise InputContractError(problems)
    for theirs, ours in renames(columns, name).items():
        df = df.withColumnRenamed(theirs, ours)
    for col in CONTRACT[name]:
        if col.name not in df.columns:
            df = df.withColumn(col.name, F.lit(None).cast("double" if col.kind == "number" else "string"))
    return df


def spark_family(dtype: DataType) -> str:
    """The contract's type family of a Spark type (as :func:`etl.contract.file_schema` names Arrow's)."""
    name = dtype.typeName()
    return {"integer": "int", "long": "int", "short": "int", "byte": "int", "timestamp_ntz": "timestamp"}.get(
        name, name
    )


def epoch_ms_column(df: SparkDataFrame, column: str) -> Column:
    """Epoch ms (long) of a timestamp, ISO string or number column (numbers in epoch seconds or ms, as
    :func:`fraudgraph.timeutil.epoch_number_ms` reads them)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType, StringType, TimestampNTZType, TimestampType

    from fraudgraph.timeutil import EPOCH_SECONDS_BELOW

    dtype = df.schema[column].dataType
    col = F.col(column)

    def from_number(n):
        return F.when(F.abs(n) < EPOCH_SECONDS_BELOW, n * 1000).otherwise(n).cast("long")

    if isinstance(dtype, (TimestampType, TimestampNTZType)):
        return F.unix_millis(col.cast("timestamp"))
    if isinstance(dtype, NumericType):
        return from_number(col.cast("double"))
    if isinstance(dtype, StringType):
        return F.coalesce(
            F.when(col.rlike(r"^-?\d+$"), from_number(col.cast("long"))), F.unix_millis(F.try_to_timestamp(col))
        )
    return F.unix_millis(col.cast("timestamp"))
