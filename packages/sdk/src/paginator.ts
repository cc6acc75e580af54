/** One page as the paginator needs it. */
export interface Page<T> {
  items: T[];
  nextToken: string | null;
  hasNext: boolean;
}

/**
 * Pages through `Machine.list` results. It starts holding the first page; `nextItems()` fetches
 * the following one, and `for await` yields every item from the current page to the last.
 * Items are {@link MachineInfo} objects, or plain rows holding only the requested fields when
 * `list` was given `fields`.
 *
 * @example
 * ```ts
 * const page = await Machine.list({ limit: 20 });
 * for (const info of page.items) console.log(info.id, info.status);
 * while (page.hasNext) {
 *   for (const info of await page.nextItems()) console.log(info.id);
 * }
 * ```
 */
export class MachinePaginator<T> implements AsyncIterable<T> {
  /**
   * Items of the current page.
   *
   * @example
   * ```ts
   * const { items } = await Machine.list();
   * ```
   */
  items: T[];
  /**
   * Whether another page follows the current one.
   *
   * @example
   * ```ts
   * if (page.hasNext) await page.nextItems();
   * ```
   */
  hasNext: boolean;
  /**
   * Token of the next page (`null` on the last page); pass it as `nextToken` to `Machine.list`
   * to continue later, e.g. from another process.
   *
   * @example
   * ```ts
   * const later = await Machine.list({ limit: 20, nextToken: page.nextToken ?? undefined });
   * ```
   */
  nextToken: string | null;
  readonly #fetchPage: (nextToken: string) => Promise<Page<T>>;

  /**
   * Made by `Machine.list`.
   *
   * @internal
   * @example
   * ```ts
   * const page = await Machine.list();
   * ```
   */
  constructor(first: Page<T>, fetchPage: (nextToken: string) => Promise<Page<T>>) {
    this.items = first.items;
    this.hasNext = first.hasNext;
    this.nextToken = first.nextToken;
    this.#fetchPage = fetchPage;
  }

  /**
   * Fetches the next page, makes it the current one and returns its items; returns `[]` when
   * there is no next page.
   *
   * @example
   * ```ts
   * const page = await Machine.list({ limit: 10 });
   * const second = await page.nextItems();
   * ```
   */
  async nextItems(): Promise<T[]> {
    if (!this.hasNext || this.nextToken === null) {
      this.hasNext = false;
      return [];
    }
    const page = await this.#fetchPage(this.nextToken);
    this.items = page.items;
    this.hasNext = page.hasNext;
    this.nextToken = page.nextToken;
    return page.items;
  }

  /**
   * Yields the current page's items, then fetches and yields each following page. The paginator
   * advances as it goes, so after the loop it holds the last page.
   *
   * @example
   * ```ts
   * for await (const info of await Machine.list({ query: { state: 'running' } })) {
   *   console.log(info.id);
   * }
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    yield* this.items;
    while (this.hasNext) yield* await this.nextItems();
  }
}
