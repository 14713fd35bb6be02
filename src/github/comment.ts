import { apiCall, type GitHubClient } from './client.js'
import { LIMITS, truncateMarkdown } from './limits.js'

const PERMISSION = 'pull-requests: write'

export interface CommentTarget {
  owner: string
  repo: string
  /** Pull request number (PR comments are issue comments). */
  issueNumber: number
}

/**
 * The hidden marker that makes the comment sticky: one comment per configuration × system.
 * An emulated leg (guest architecture ≠ runner's) gets its own, so it does not overwrite the
 * native leg's comment of the same configuration and system.
 */
export function commentMarker(configuration: string, system: string, emulated = false): string {
  // Without `<` and `>` no configuration name can end the HTML comment early.
  const name = `${configuration}:${system}${emulated ? ':emulated' : ''}`.replace(/[<>]/g, '_')
  return `<!-- nixos-vm-validate:${name} -->`
}

/** Marker first, so a cut for length can never remove it. */
export function commentBody(marker: string, markdown: string): string {
  const budget = LIMITS.commentBodyBytes - Buffer.byteLength(marker) - 1
  return `${marker}\n${truncateMarkdown(markdown, budget)}`
}

interface IssueComment {
  id: number
  body?: string | null
}

/** The first comment holding the marker, searching every page of the PR's comments. */
export function findMarked(comments: IssueComment[], marker: string): IssueComment | undefined {
  return comments.find((c) => typeof c.body === 'string' && c.body.includes(marker))
}

export async function findMarkedComment(
  client: GitHubClient,
  t: CommentTarget,
  marker: string
): Promise<number | undefined> {
  return apiCall('listing the pull request comments', PERMISSION, async (signal) => {
    const pages = client.paginate.iterator(client.rest.issues.listComments, {
      owner: t.owner,
      repo: t.repo,
      issue_number: t.issueNumber,
      per_page: 100,
      request: { signal }
    })
    for await (const page of pages) {
      const hit = findMarked(page.data, marker)
      if (hit !== undefined) return hit.id
    }
    return undefined
  })
}

/** Updates the marked comment in place, else creates it. Throws GitHubApiError. */
export async function upsertComment(
  client: GitHubClient,
  t: CommentTarget,
  marker: string,
  markdown: string
): Promise<{ id: number; created: boolean }> {
  const body = commentBody(marker, markdown)
  const existing = await findMarkedComment(client, t, marker)
  if (existing !== undefined) {
    await apiCall('updating the pull request comment', PERMISSION, (signal) =>
      client.rest.issues.updateComment({
        owner: t.owner,
        repo: t.repo,
        comment_id: existing,
        body,
        request: { signal }
      })
    )
    return { id: existing, created: false }
  }
  const res = await apiCall('commenting on the pull request', PERMISSION, (signal) =>
    client.rest.issues.createComment({
      owner: t.owner,
      repo: t.repo,
      issue_number: t.issueNumber,
      body,
      request: { signal }
    })
  )
  return { id: res.data.id, created: true }
}
