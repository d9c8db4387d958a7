"""What people read: the wording of outcomes, the HTML and CSV report, the summary, report files, email."""
