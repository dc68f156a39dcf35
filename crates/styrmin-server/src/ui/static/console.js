// The built-in GraphQL console: posts the operation with the token from the form, shows
// the JSON answer. No third-party code; the token stays in this tab's sessionStorage.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("console");
  var token = document.getElementById("token");
  var result = document.getElementById("result");
  token.value = sessionStorage.getItem("styrmin-token") || "";
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem("styrmin-token", token.value);
    var variables;
    try {
      variables = JSON.parse(document.getElementById("variables").value || "{}");
    } catch (e) {
      result.textContent = "The variables are not JSON: " + e.message;
      return;
    }
    result.textContent = "…";
    fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token.value },
      body: JSON.stringify({ query: document.getElementById("query").value, variables: variables })
    })
      .then(function (r) { return r.text(); })
      .then(function (text) {
        try { result.textContent = JSON.stringify(JSON.parse(text), null, 2); }
        catch (e) { result.textContent = text; }
      })
      .catch(function (e) { result.textContent = "The request failed: " + e.message; });
  });
});
