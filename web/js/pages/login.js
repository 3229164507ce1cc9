import {fill, heading} from '../dom.js';

export async function renderLogin(main) {
  fill(main, heading('Sign in'));
}

export async function renderRegister(main) {
  fill(main, heading('Create an account'));
}
