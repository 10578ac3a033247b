/**
 * DuckDB embedded, loaded when first needed: `@duckdb/node-api` is an
 * optional dependency (a 68 MB native binary), so every other command runs
 * without it. One in-memory database per use, closed by its owner.
 */
import type { DuckDBAppender, DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';

export type Row = Record<string, unknown>;

export class Duck {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
  ) {}

  static async open(): Promise<Duck> {
    let api: typeof import('@duckdb/node-api');
    try {
      api = await import('@duckdb/node-api');
    } catch (e) {
      throw new Error(
        `DuckDB is not installed (the optional dependency @duckdb/node-api): ${(e as Error).message}`,
      );
    }
    const instance = await api.DuckDBInstance.create(':memory:');
    return new Duck(instance, await instance.connect());
  }

  async run(sql: string): Promise<void> {
    await this.connection.run(sql);
  }

  /** Rows as objects; BIGINT and HUGEINT values as bigint. */
  async rows(sql: string): Promise<Row[]> {
    const reader = await this.connection.runAndReadAll(sql);
    return reader.getRowObjects() as Row[];
  }

  appender(table: string): Promise<DuckDBAppender> {
    return this.connection.createAppender(table);
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** A string as a SQL literal. */
export function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
