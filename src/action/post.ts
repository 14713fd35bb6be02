export async function runPost(): Promise<void> {
  // finishes what main could not (issue 3)
}
